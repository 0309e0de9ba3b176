"""Coalesced nudges: "there is work in this line". A message is a nudge, not the record.

Thousands of orders a second share one Celery message per line: a Redis mark (SET NX)
says a nudge is already on its way or a worker is draining. A lost nudge only delays work
until the sweep, which nudges with force=True.

A line has WORKER_LANES lanes, each with its own mark; intake, the sweep and every service
nudge lane 0. A worker that finds its line with a backlog (its batch came back full)
recruits the first free lane (`recruit`): one more process drains the same line, taking its
own batches (SKIP LOCKED), so a stage grows with its processes on one host or several. A
helper lane that finds the line empty drops its mark and ends; lane 0 keeps the wake-up
promise alone, so no work waits on a helper.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from celery import current_app as app  # the app config/celery.py made
from django.conf import settings

from infra.sql import replanned
from orders import waiting_line

log = logging.getLogger(__name__)

RESERVE, PAY, CALLBACK = "reserve", "pay", "callback"

# The tasks each nudge wakes (orders/tasks.py), published by name: the tasks call these
# services, so importing them here would close a circle. Routed to their queues by
# CELERY_TASK_ROUTES, by this same name.
TASKS = {
    RESERVE: "orders.reserve_orders",
    PAY: "orders.settle_payments",
    CALLBACK: "orders.deliver_callbacks",
}


def nudge_reservations(campaign_id: int | None, *, force: bool = False, lane: int = 0) -> None:
    name = waiting_line.queue_name(campaign_id)
    if force or waiting_line.nudge_claim(RESERVE, name):
        _publish(RESERVE, name, campaign_id, lane=lane)


def nudge_payments(*, force: bool = False, lane: int = 0) -> None:
    if force or waiting_line.nudge_claim(PAY, "all"):
        _publish(PAY, "all", lane=lane)


def nudge_callbacks(*, force: bool = False, lane: int = 0) -> None:
    if force or waiting_line.nudge_claim(CALLBACK, "all"):
        _publish(CALLBACK, "all", lane=lane)


def recruit(kind: str, name: str, *args: object) -> int | None:
    """Ask one more process to drain this line: claim its first free lane and publish a nudge
    for it. Called by a worker whose batch came back full, before it does that batch's work,
    so the helper starts while it works. Returns the lane claimed (None: all are busy)."""
    lane = waiting_line.nudge_recruit(kind, name, settings.WORKER_LANES)
    if lane is not None:
        _publish(kind, name, *args, lane=lane)
    return lane


def _publish(kind: str, name: str, *args: object, lane: int = 0) -> None:
    try:
        # The message the task's own apply_async sends: its result ignored, its time limits
        # (the app's defaults; no task sets its own) in the headers. Lane 0's message is the
        # one workers before lanes took (no keyword), so a rolling upgrade drains it either way.
        app.send_task(
            TASKS[kind],
            args=args,
            kwargs={"lane": lane} if lane else None,
            ignore_result=True,
            time_limit=app.conf.task_time_limit,
            soft_time_limit=app.conf.task_soft_time_limit,
        )
    except Exception:
        # Broker down: the row is committed, so the sweep will find it. Drop the mark so the
        # next commit tries to publish again instead of trusting a nudge that never left.
        log.warning("could not publish %s nudge for %s", kind, name, exc_info=True)
        waiting_line.nudge_release(kind, name, lane)


def drain(
    kind: str,
    name: str,
    step: Callable[[], int],
    *,
    renudge: Callable[[], None],
    linger: float = 0.0,
    fill: int = 1,
    lane: int = 0,
) -> int:
    """A worker's loop over one line of work: run `step` (it handles one batch and returns
    how many items it handled) until the line is empty or WORKER_DRAIN_SECONDS pass; then
    hand over to a fresh message with `renudge`, so that no task runs for long.

    Group commit: after a step that handled fewer than `fill` items, wait `linger` seconds
    before the next, so that work trickling in is taken in batches (one transaction, one
    round of calls for many) instead of paying the fixed costs of a batch for each item.

    When a step finds nothing, the nudge mark is dropped and the line looked at once more:
    whatever commits after the drop publishes a new nudge, so no wake-up is lost. `lane` is
    the mark this worker holds (a helper's, recruited, or lane 0's).
    """
    deadline = time.monotonic() + settings.WORKER_DRAIN_SECONDS
    handled = 0
    try:
        while time.monotonic() < deadline:
            # A batch that a migration's change aborted runs again, its statements prepared
            # afresh (infra.sql.PlanChanged).
            done = replanned(step)
            if not done:
                waiting_line.nudge_release(kind, name, lane)
                done = replanned(step)
                if not done:
                    return handled
                waiting_line.nudge_hold(kind, name, lane)
            handled += done
            if done < fill and linger > 0:
                time.sleep(linger)
    except BaseException:
        # A drain that failed (database gone, time limit) is not draining any more: drop the
        # mark, so the next commit or sweep sends a nudge instead of waiting out its TTL.
        waiting_line.nudge_release(kind, name, lane)
        raise
    renudge()
    return handled
