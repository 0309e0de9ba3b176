"""The Celery floor: a task that does nothing, routed to its own queue `bench`."""

from celery import shared_task


@shared_task(name="bench.noop", acks_late=True, ignore_result=True)
def noop_task() -> None:
    """Nothing: what is left is Celery's own cost per message."""
