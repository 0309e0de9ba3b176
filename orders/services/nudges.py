"""Coalesced nudges: "there is work in this line". A message is a nudge, not the record.

Thousands of orders a second share one Celery message per line: a Redis mark (SET NX)
says a nudge is already on its way or a worker is draining. A lost nudge only delays work
until the sweep, which nudges with force=True.
"""

from __future__ import annotations

import logging

from config import fast
from orders.tasks import deliver_callbacks_task, reserve_orders_task, settle_payments_task

log = logging.getLogger(__name__)

RESERVE, PAY, CALLBACK = "reserve", "pay", "callback"


def nudge_reservations(campaign_id: int | None, *, force: bool = False) -> None:
    if force or fast.nudge_claim(RESERVE, fast.queue_name(campaign_id)):
        _publish(reserve_orders_task, RESERVE, fast.queue_name(campaign_id), campaign_id)


def nudge_payments(*, force: bool = False) -> None:
    if force or fast.nudge_claim(PAY, "all"):
        _publish(settle_payments_task, PAY, "all")


def nudge_callbacks(*, force: bool = False) -> None:
    if force or fast.nudge_claim(CALLBACK, "all"):
        _publish(deliver_callbacks_task, CALLBACK, "all")


def _publish(task: object, kind: str, name: str, *args: object) -> None:
    try:
        task.apply_async(args=args)  # type: ignore[attr-defined]
    except Exception:
        # Broker down: the row is committed, so the sweep will find it. Drop the mark so the
        # next commit tries to publish again instead of trusting a nudge that never left.
        log.warning("could not publish %s nudge for %s", kind, name, exc_info=True)
        fast.nudge_release(kind, name)
