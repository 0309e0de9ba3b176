"""Celery tasks: thin, named, idempotent. Each message is a nudge ("this line has work"); the
worker reads the state from the database and does what is still due, so a duplicate or
stale message does nothing harmful. `lane` says which of the line's nudge marks the message
holds (orders.services.nudges): 0, the line's own, unless a busy worker recruited help.
Queues are set in CELERY_TASK_ROUTES. The services publish
these by name (orders.services.nudges), so nothing of orders imports this module back."""

from celery import shared_task

from orders.services import callbacks_drain, payments_drain, pipeline_sweep, reservations_drain


@shared_task(name="orders.reserve_orders", acks_late=True, ignore_result=True)
def reserve_orders_task(campaign_id: int | None = None, lane: int = 0) -> None:
    reservations_drain(campaign_id=campaign_id, lane=lane)


@shared_task(name="orders.settle_payments", acks_late=True, ignore_result=True)
def settle_payments_task(lane: int = 0) -> None:
    payments_drain(lane=lane)


@shared_task(name="orders.deliver_callbacks", acks_late=True, ignore_result=True)
def deliver_callbacks_task(lane: int = 0) -> None:
    callbacks_drain(lane=lane)


@shared_task(name="orders.sweep", acks_late=True, ignore_result=True)
def sweep_task() -> None:
    pipeline_sweep()
