"""What the staff admin's backlog page and /metrics show of the pipeline (docs/admin.md),
read fast enough to answer within half a second with millions of orders.

The figures come from the selectors; `queues` puts them together (lines, queue depths,
workers, parked work) and decides what may be a few seconds old. `common` holds what this
and the campaign page (backoffice.dashboard) share: the refresh period and the switch for
background threads (set `common.BACKGROUND`, not a copy of it)."""

from orders.dashboard.common import LIVE_SECONDS
from orders.dashboard.queues import (
    BacklogFigures,
    LineFigures,
    QueueFigures,
    WorkerFigures,
    WorkersSeen,
    backlog_figures,
    queue_names,
    queues_figures,
    workers_alive,
    workers_ask,
)

__all__ = [
    "LIVE_SECONDS",
    "BacklogFigures",
    "LineFigures",
    "QueueFigures",
    "WorkerFigures",
    "WorkersSeen",
    "backlog_figures",
    "queue_names",
    "queues_figures",
    "workers_alive",
    "workers_ask",
]
