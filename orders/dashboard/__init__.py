"""What the staff admin's campaign and backlog pages show (docs/admin.md), read fast
enough to answer within half a second with millions of orders.

The figures come from the selectors; these modules put them together and decide what may be
a few seconds old: `campaign` (counters, orders by status, throughput and accept-to-paid times
kept per minute) and `queues` (the backlog page: lines, queue depths, workers, parked work).
`common` holds what both share: the refresh period and the switch for background threads
(set `common.BACKGROUND`, not a copy of it).
"""

from orders.dashboard.campaign import (
    CampaignFigures,
    MinuteHistory,
    Point,
    Throughput,
    campaign_figures,
    campaign_throughput,
    percentile,
)
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
    "CampaignFigures",
    "LineFigures",
    "MinuteHistory",
    "Point",
    "QueueFigures",
    "Throughput",
    "WorkerFigures",
    "WorkersSeen",
    "backlog_figures",
    "campaign_figures",
    "campaign_throughput",
    "percentile",
    "queue_names",
    "queues_figures",
    "workers_alive",
    "workers_ask",
]
