"""The pipeline's Prometheus metrics (see infra/metrics.py for the mode and the exposition).

Counted where the work is done, once per batch where a batch is the unit: a transition of
500 orders is one `inc(500)`. Recorded after commit, so that a rolled-back batch counts
nothing. The gauges of state (queues, lines, campaigns, parked work) are not kept up to date
by anyone: `StateCollector` reads them from the existing selectors when /metrics is scraped.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from infra.metrics import scrape_collector

if TYPE_CHECKING:
    from orders.models import Order

log = logging.getLogger(__name__)

TRANSITIONS = Counter(
    "orders_transitions_total",
    "Orders moved from one status to another (orders_move), counted after commit.",
    ["source", "target"],
)
REJECTIONS = Counter(
    "orders_rejected_total",
    "Orders the reservation worker rejected under its locks, by reason (sold_out, "
    "out_of_stock, budget_exhausted, coupon_in_use, ...): refusals intake could not foresee.",
    ["reason"],
)
ACCEPT_TO_PAID = Histogram(
    "orders_accept_to_paid_seconds",
    "From the order's acceptance (created_at) to its move to paid.",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800),
)
BATCH_SIZE = Histogram(
    "pipeline_batch_size",
    "Items handled by one batch of a stage (reserve, settle, callback).",
    ["stage"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 200, 500, 1000),
)
BATCH_SECONDS = Histogram(
    "pipeline_batch_duration_seconds",
    "Wall time of one batch of a stage, gateway or receiver calls included.",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
GATEWAY_CALLS = Counter(
    "gateway_calls_total",
    "Payment attempts by outcome: succeeded, declined, unknown (time-out, 5xx) or retry "
    "(429/409 at the gateway, or not sent while waiting for our own limit).",
    ["outcome"],
)
GATEWAY_TOKEN_WAIT = Counter(
    "gateway_token_wait_seconds_total",
    "Seconds payment threads slept waiting for a token of the global gateway limit.",
)
CALLBACKS = Counter(
    "callbacks_total",
    "Callback POSTs by outcome: delivered, error (retried later), failed (given up, parked), "
    "unsent (waiting for the client's callback limit); superseded: not sent, a newer status "
    "of the order carries it.",
    ["outcome"],
)
PARKED = Counter(
    "pipeline_parked_total",
    "Work given up and parked for staff: kind = order, payment or callback.",
    ["kind"],
)


def _after_commit(fn: object) -> None:
    # Outside an atomic block on_commit runs at once; inside, only if the block commits.
    transaction.on_commit(fn)  # type: ignore[arg-type]


def transitions_record(orders: Sequence[Order], to: str, now: datetime, reason: str = "") -> None:
    """Called by orders_move with the orders still in their source status. Test orders are
    not counted: business figures are live ones only (docs/integrator-guide.md, Test mode)."""
    orders = [o for o in orders if o.livemode]
    if not orders:
        return
    sources = Tally(o.status for o in orders)
    waits = [(now - o.created_at).total_seconds() for o in orders] if to == "paid" else []

    def record() -> None:
        for source, n in sources.items():
            TRANSITIONS.labels(source, to).inc(n)
        for seconds in waits:
            ACCEPT_TO_PAID.observe(seconds)
        if to == "rejected":
            REJECTIONS.labels(reason or "unknown").inc(len(orders))

    _after_commit(record)


@contextmanager
def batch(stage: str) -> Iterator[list[int]]:
    """Time one batch; the caller appends the number of items it handled (none: not a batch,
    an empty look at the line, which is not recorded)."""
    size: list[int] = []
    start = time.perf_counter()
    yield size
    if size and size[0]:
        BATCH_SIZE.labels(stage).observe(size[0])
        BATCH_SECONDS.labels(stage).observe(time.perf_counter() - start)


def gateway_outcomes(kinds: Sequence[str]) -> None:
    for kind, n in Tally(kinds).items():
        GATEWAY_CALLS.labels(kind).inc(n)


def gateway_waited(seconds: float) -> None:
    if seconds > 0:
        GATEWAY_TOKEN_WAIT.inc(seconds)


def callback_outcomes(tally: Tally[str]) -> None:
    for outcome, n in tally.items():
        if n:
            CALLBACKS.labels(outcome).inc(n)


def callbacks_superseded(n: int) -> None:
    if n:
        _after_commit(lambda: CALLBACKS.labels("superseded").inc(n))


def parked(kind: str, n: int = 1) -> None:
    if n:
        _after_commit(lambda: PARKED.labels(kind).inc(n))


# --- Gauges read at scrape time ---------------------------------------------------------------


class StateCollector:
    """Queue depth and oldest message per queue (the broker), consumers per queue (Celery's
    inspect, cached by the backlog page's machinery), orders waiting and oldest wait per
    campaign, coupons and budget remaining per campaign, parked work now. The same selectors
    as the admin's backlog page, with its short time-outs; a part that cannot be read is left
    out of this scrape (and logged), so an alert sees the series go absent, not a false 0."""

    # Every family it can yield (the dashboard's and the alerts' test checks against these).
    NAMES = frozenset(
        {
            "celery_queue_messages",
            "celery_queue_oldest_message_age_seconds",
            "celery_queue_consumers",
            "orders_waiting",
            "orders_reserved",
            "orders_oldest_waiting_seconds",
            "campaign_coupons_remaining",
            "campaign_budget_remaining_fen",
            "campaign_budget_total_fen",
            "campaign_active",
            "pipeline_parked",
        }
    )

    def collect(self) -> Iterator[Metric]:
        for part in (self._queues, self._lines, self._campaigns, self._parked):
            try:
                yield from part()
            except Exception:
                log.warning("metrics: %s not read", part.__name__, exc_info=True)

    def _queues(self) -> Iterator[Metric]:
        from orders import dashboard  # noqa: PLC0415  (admin-side module, loaded on scrape)

        depth = GaugeMetricFamily(
            "celery_queue_messages", "Messages waiting in the broker, per queue.", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "celery_queue_oldest_message_age_seconds",
            "Age of the oldest message waiting in the queue (0 when empty).",
            labels=["queue"],
        )
        for q in dashboard.queues_figures({}):
            if q.messages is None:
                continue
            depth.add_metric([q.name], q.messages)
            age.add_metric([q.name], q.oldest_age_seconds or 0.0)
        yield depth
        yield age
        seen = dashboard.workers_alive()
        if seen.asked_at is not None and not seen.error:
            consumers = GaugeMetricFamily(
                "celery_queue_consumers",
                "Workers consuming the queue, as of the last inspect (up to a minute old).",
                labels=["queue"],
            )
            counts = Tally(q for w in seen.workers for q in w.queues)
            for name in dashboard.queue_names():
                consumers.add_metric([name], counts.get(name, 0))
            yield consumers

    def _lines(self) -> Iterator[Metric]:
        from coupons import selectors as coupons_selectors  # noqa: PLC0415
        from orders import selectors  # noqa: PLC0415

        campaigns = {c.pk: c.slug for c in coupons_selectors.campaign_list(livemode=True)}
        waiting = GaugeMetricFamily(
            "orders_waiting",
            "Orders received and waiting in line, per campaign.",
            labels=["campaign"],
        )
        holding = GaugeMetricFamily(
            "orders_reserved", "Orders holding stock, waiting for payment.", labels=["campaign"]
        )
        oldest = GaugeMetricFamily(
            "orders_oldest_waiting_seconds",
            "Age of the oldest order waiting in the campaign's line (0 when none).",
            labels=["campaign"],
        )
        now = timezone.now()
        for line in selectors.lines_waiting(campaign_ids=campaigns):
            slug = campaigns.get(line.campaign_id, "") if line.campaign_id else "none"
            waiting.add_metric([slug], line.waiting)
            holding.add_metric([slug], line.reserved)
            age = (now - line.oldest_created_at).total_seconds() if line.oldest_created_at else 0
            oldest.add_metric([slug], max(0.0, age))
        yield from (waiting, holding, oldest)

    def _campaigns(self) -> Iterator[Metric]:
        from coupons import selectors as coupons_selectors  # noqa: PLC0415

        coupons = GaugeMetricFamily(
            "campaign_coupons_remaining", "Coupons not yet issued.", labels=["campaign"]
        )
        budget = GaugeMetricFamily(
            "campaign_budget_remaining_fen",
            "Budget neither held nor spent, in fen.",
            labels=["campaign"],
        )
        total = GaugeMetricFamily(
            "campaign_budget_total_fen", "Budget, in fen.", labels=["campaign"]
        )
        active = GaugeMetricFamily(
            "campaign_active", "1 while the campaign takes orders.", labels=["campaign"]
        )
        now = timezone.now()
        for c in coupons_selectors.campaign_list(livemode=True):  # test campaigns are not business
            coupons.add_metric([c.slug], c.coupons_remaining)
            budget.add_metric([c.slug], c.budget_remaining)
            total.add_metric([c.slug], c.budget_total)
            active.add_metric([c.slug], 1 if c.is_open_at(now) else 0)
        yield from (coupons, budget, total, active)

    def _parked(self) -> Iterator[Metric]:
        from orders import selectors  # noqa: PLC0415

        parked = GaugeMetricFamily(
            "pipeline_parked", "Work parked for staff now, by kind.", labels=["kind"]
        )
        parked.add_metric(["order"], selectors.parked_orders().count())
        parked.add_metric(["payment"], selectors.parked_payments().count())
        parked.add_metric(["callback"], selectors.failed_callbacks().count())
        yield parked


scrape_collector(StateCollector)
