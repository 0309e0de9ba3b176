"""The figures of the staff admin's campaign page (docs/admin.md), read fast enough to
answer within half a second with millions of orders:

- Coupon, budget and stock counters are read from their rows on every request.
- Orders by status is one GROUP BY over the campaign's orders, which grows with them (0.1 s
  at 3 million orders, several times that on a busy machine, docs/admin.md). Its answer is kept
  in Redis and counted again once it is LIVE_SECONDS old, or, when counting takes long,
  COUNT_PERIOD_FACTOR times as long as the last count took, so that a page left open costs
  the database at most 1/COUNT_PERIOD_FACTOR of a core. A count that took under
  INLINE_SECONDS is counted again in the request; a longer one in a background thread (one
  per campaign across processes) while the page shows the last answer and its time. The
  first look at a campaign counts in the request for at most INLINE_SECONDS, then in the
  background, and the page says the orders are being counted.
- The hot products (a sample of the newest orders) are cached for LIVE_SECONDS, the pages'
  refresh period, so a room of staff costs one query per period.
- Throughput and accept-to-paid times are kept per minute. A minute is final FINAL_AFTER
  seconds after it ended (its orders and payments have committed by then) and is then kept in
  Redis for good; only the minutes since are read again. History not yet kept (a first look
  at a long campaign, or after Redis lost it) is filled in newest first, at most
  HISTORY_BUDGET_SECONDS per request and the rest in a background thread; the page says how
  much is in.

Redis is forgetful here too: without it, history is recomputed and nothing is lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

import redis
from django.core.cache import cache as django_cache
from django.db import connection
from django.utils import timezone

from coupons import selectors as coupons_selectors
from coupons.models import Campaign
from infra import fast, sql
from orders import selectors, waiting_line
from orders.dashboard import common
from orders.models import Order
from orders.selectors import LATENCY_BASE, MinuteFigures

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

log = logging.getLogger(__name__)

# A minute is final this long after it ended: its orders and payments have committed (their
# transactions last milliseconds to a second). Shorter means fewer rows read on each refresh
# (at 800 paid orders/s, the minute-and-a-bit since is ~100,000 rows, ~0.4 s, once per
# LIVE_SECONDS); longer means safer against a transaction that commits very late.
FINAL_AFTER = timedelta(seconds=60)
HISTORY_BUDGET_SECONDS = 0.1  # in the request; the rest in the background
HISTORY_LOCK_SECONDS = 120  # one background filler per campaign, for at most this long
HISTORY_KEPT_SECONDS = 30 * 24 * 3600  # a campaign's history outlives its last look by this
HISTORY_CHUNK_ORDERS = 10_000  # orders per history query (about 0.05 s)
HISTORY_AFTER_END = timedelta(hours=1)  # payments may settle after the campaign closed
INLINE_SECONDS = 0.25  # a count that takes longer goes to a background thread
COUNT_PERIOD_FACTOR = 10  # a count is repeated after this many times its own duration
COUNT_KEPT_SECONDS = 24 * 3600
RECENT_MINUTES = 15
WHOLE_CAMPAIGN_BINS = 120  # points of the whole-campaign charts
# How often the page refreshes itself: the backlog page's period (orders.dashboard.common).
LIVE_SECONDS = common.LIVE_SECONDS


@dataclass(frozen=True)
class Point:
    """One bin of a chart: its start, orders accepted and paid per minute, and accept-to-paid
    percentiles in seconds (None: nothing paid in it, or not computed yet)."""

    at: datetime
    accepted_per_minute: float | None
    paid_per_minute: float | None
    p50: float | None
    p95: float | None


@dataclass(frozen=True)
class Throughput:
    points: list[Point]
    accepted: int
    paid: int
    p50: float | None
    p95: float | None
    minutes: int  # minutes covered
    minutes_known: int  # of which computed so far (the rest is being filled in)

    @property
    def complete(self) -> bool:
        return self.minutes_known >= self.minutes


@dataclass(frozen=True)
class CampaignFigures:
    campaign: Campaign
    public_status: str
    coupons_held: int
    coupons_redeemed: int | None  # None: the orders are being counted (a first look)
    orders_by_status: dict[str, int | None]
    orders_total: int | None
    orders_counted_at: datetime | None
    hot_products: list[selectors.HotProduct]
    line: selectors.LineWaiting | None
    drain_rate: float
    estimated_wait_seconds: int
    recent: Throughput
    whole: Throughput
    read_at: datetime


def campaign_figures(*, campaign_id: int) -> CampaignFigures:
    """Everything the campaign page shows. Raises NotFound."""
    now = timezone.now()
    campaign = coupons_selectors.campaign_by_id(campaign_id=campaign_id)
    counted = kept_count(
        f"admin:campaign:{campaign_id}:by-status",
        lambda: selectors.campaign_orders_by_status(campaign_id=campaign_id),
    )
    by_status: dict[str, int | None] = {
        status: None if counted is None else counted.value.get(status, 0)
        for status in Order.Status.values
    }
    hot = _cached(
        f"admin:campaign:{campaign_id}:hot",
        lambda: selectors.campaign_hot_products(campaign_id=campaign_id),
    )
    lines = selectors.lines_waiting(campaign_ids=[campaign_id])
    line = next((x for x in lines if x.campaign_id == campaign_id), None)
    rate = waiting_line.drain_rate(campaign_id)
    recent, whole = campaign_throughput(campaign, now=now)
    return CampaignFigures(
        campaign=campaign,
        public_status=campaign.status_at(now),
        coupons_held=coupons_selectors.coupons_held_count(campaign_id=campaign_id),
        # A coupon is redeemed exactly when its order is paid, and stays so when the order is
        # refunded: counted from the orders' GROUP BY above instead of a second one over
        # every coupon of the campaign.
        coupons_redeemed=None
        if counted is None
        else counted.value.get(Order.Status.PAID, 0) + counted.value.get(Order.Status.REFUNDED, 0),
        orders_by_status=by_status,
        orders_total=None if counted is None else sum(counted.value.values()),
        orders_counted_at=None if counted is None else datetime.fromtimestamp(counted.at, tz=UTC),
        hot_products=hot,
        line=line,
        drain_rate=rate,
        # The line is the whole pipeline: the last order waits for everything ahead of it,
        # held orders included, to become final (orders.waiting_line).
        estimated_wait_seconds=waiting_line.estimate(
            line.waiting + line.reserved if line else 0, rate
        ),
        recent=recent,
        whole=whole,
        read_at=now,
    )


def _cached(key: str, compute: Callable[[], T], seconds: int = common.LIVE_SECONDS) -> T:
    """`compute()`, kept in the cache for `seconds`: the pages' refresh period. Without
    Redis, computed every time."""
    try:
        found = django_cache.get(key)
    except redis.RedisError:
        return compute()
    if found is None:
        found = compute()
        try:
            django_cache.set(key, found, seconds)
        except redis.RedisError:
            log.warning("admin figures not cached", exc_info=True)
    return found


@dataclass(frozen=True)
class Counted:
    value: dict[str, int]
    at: float  # Unix time the count began
    took: float  # seconds


def kept_count(key: str, count: Callable[[], dict[str, int]]) -> Counted | None:
    """`count()`'s latest answer, counted again when it is older than LIVE_SECONDS and than
    COUNT_PERIOD_FACTOR times the last count's duration; in the request if that count was
    quick, else in the background while this answer stands. None: not counted yet (a first
    look whose count did not finish within INLINE_SECONDS; the background is at it). Without
    Redis, counted in the request every time."""
    try:
        kept = django_cache.get(key)
    except redis.RedisError:
        return _count_now(count)
    if kept is not None and time.time() - kept.at < max(
        LIVE_SECONDS, COUNT_PERIOD_FACTOR * kept.took
    ):
        return kept
    if not common.BACKGROUND or (kept is not None and kept.took < INLINE_SECONDS):
        return _count_and_keep(key, count)
    if kept is None:
        first = sql.within(int(INLINE_SECONDS * 1000), lambda: _count_now(count))
        if first is not None:
            _keep(key, first)
            return first
    with contextlib.suppress(redis.RedisError):
        if django_cache.add(f"{key}:counting", 1, timeout=HISTORY_LOCK_SECONDS):
            threading.Thread(
                target=_count_in_background, args=(key, count), name="admin-count", daemon=True
            ).start()
    return kept


def _count_now(count: Callable[[], dict[str, int]]) -> Counted:
    at = time.time()
    began = time.monotonic()
    value = count()
    return Counted(value=value, at=at, took=time.monotonic() - began)


def _count_and_keep(key: str, count: Callable[[], dict[str, int]]) -> Counted:
    counted = _count_now(count)
    _keep(key, counted)
    return counted


def _keep(key: str, counted: Counted) -> None:
    try:
        django_cache.set(key, counted, COUNT_KEPT_SECONDS)
    except redis.RedisError:
        log.warning("admin count not kept", exc_info=True)


def _count_in_background(key: str, count: Callable[[], dict[str, int]]) -> None:
    try:
        _count_and_keep(key, count)
    except Exception:
        log.exception("admin count %s failed", key)
    finally:
        connection.close()  # this thread's own connection
        with contextlib.suppress(redis.RedisError):
            django_cache.delete(f"{key}:counting")


def _minute(moment: datetime) -> int:
    return math.floor(moment.timestamp() / 60)


def _at(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, tz=UTC)


def campaign_throughput(campaign: Campaign, *, now: datetime) -> tuple[Throughput, Throughput]:
    """(the last RECENT_MINUTES minutes, the whole campaign so far), per minute."""
    first = _minute(campaign.starts_at)
    end = _minute(min(now, campaign.ends_at + HISTORY_AFTER_END)) + 1  # exclusive, partial
    final_end = max(first, min(end, _minute(now - FINAL_AFTER)))
    history = MinuteHistory(campaign.pk)
    known = history.load(first, final_end)
    history.fill(known, first, final_end)
    live = _cached(
        f"admin:campaign:{campaign.pk}:live:{final_end}",
        lambda: (
            selectors.campaign_minutes(campaign_id=campaign.pk, start=_at(final_end), end=_at(end))
            if end > final_end
            else {}
        ),
    )
    minutes: dict[int, MinuteFigures] = dict(known)
    for minute in range(final_end, end):
        minutes[minute] = live.get(minute, MinuteFigures())
    recent_first = max(first, end - RECENT_MINUTES)
    recent = _throughput(minutes, recent_first, end, bin_minutes=1)
    span = max(0, end - first)
    bin_minutes = max(1, math.ceil(span / WHOLE_CAMPAIGN_BINS))
    whole = _throughput(minutes, first, end, bin_minutes=bin_minutes)
    return recent, whole


def _throughput(
    minutes: dict[int, MinuteFigures], first: int, end: int, *, bin_minutes: int
) -> Throughput:
    points: list[Point] = []
    total = MinuteFigures()
    known = 0
    for start in range(first, end, bin_minutes):
        merged = MinuteFigures()
        covered = 0
        for minute in range(start, min(end, start + bin_minutes)):
            figures = minutes.get(minute)
            if figures is None:
                continue
            covered += 1
            _add(merged, figures)
        known += covered
        _add(total, merged)
        points.append(
            Point(
                at=_at(start),
                accepted_per_minute=merged.accepted / covered if covered else None,
                paid_per_minute=merged.paid / covered if covered else None,
                p50=percentile(merged.latency, 0.50),
                p95=percentile(merged.latency, 0.95),
            )
        )
    return Throughput(
        points=points,
        accepted=total.accepted,
        paid=total.paid,
        p50=percentile(total.latency, 0.50),
        p95=percentile(total.latency, 0.95),
        minutes=max(0, end - first),
        minutes_known=known,
    )


def _add(into: MinuteFigures, figures: MinuteFigures) -> None:
    into.accepted += figures.accepted
    into.paid += figures.paid
    for bucket, count in figures.latency.items():
        into.latency[bucket] = into.latency.get(bucket, 0) + count


def percentile(histogram: dict[int, int], share: float) -> float | None:
    """The `share` percentile, in seconds, of a latency histogram (selectors.LATENCY_BASE):
    the middle of the bucket it falls in, within 2.5 % of the exact value."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = share * total
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return LATENCY_BASE ** (bucket + 0.5) / 1000
    return None  # unreachable: the last bucket reaches the total


class MinuteHistory:
    """Final minutes of one campaign, kept in a Redis hash (minute → figures) for good: their
    orders and payments no longer change, so each is read from PostgreSQL once."""

    def __init__(self, campaign_id: int) -> None:
        self.campaign_id = campaign_id
        self.key = f"cop:admin:minutes:{campaign_id}"

    def load(self, first: int, end: int) -> dict[int, MinuteFigures]:
        try:
            raw = fast.client().hgetall(self.key)
        except redis.RedisError:
            log.warning("minute history unavailable", exc_info=True)
            return {}
        found: dict[int, MinuteFigures] = {}
        for minute, value in raw.items():
            if first <= int(minute) < end:
                accepted, paid, latency = json.loads(value)
                found[int(minute)] = MinuteFigures(
                    accepted=accepted, paid=paid, latency={int(b): n for b, n in latency}
                )
        return found

    def fill(self, known: dict[int, MinuteFigures], first: int, end: int) -> None:
        """Compute the missing minutes of [first, end), newest first: for at most
        HISTORY_BUDGET_SECONDS in this request, then, if any are left, in a background thread
        (one per campaign across processes, by a Redis lock) that keeps them in Redis for the
        next refresh to show."""
        lock = self.key + ":filling"
        try:
            busy = bool(fast.client().exists(lock))
        except redis.RedisError:
            busy = False  # without Redis: this request's share only, kept nowhere
        if busy:
            return  # a background filler is at it: this request shows what it has so far
        budget = HISTORY_BUDGET_SECONDS if common.BACKGROUND else math.inf
        if self._fill(known, first, end, budget=budget):
            return
        try:
            if not fast.client().set(lock, 1, nx=True, ex=HISTORY_LOCK_SECONDS):
                return
        except redis.RedisError:
            return
        threading.Thread(
            target=self._fill_in_background,
            args=(first, end),
            name=f"admin-history-{self.campaign_id}",
            daemon=True,
        ).start()

    def _fill_in_background(self, first: int, end: int) -> None:
        try:
            self._fill(self.load(first, end), first, end, budget=HISTORY_LOCK_SECONDS - 5)
        except Exception:
            log.exception("minute history of campaign %s not filled", self.campaign_id)
        finally:
            connection.close()  # this thread's own connection
            with contextlib.suppress(redis.RedisError):
                fast.client().delete(self.key + ":filling")

    def _fill(
        self, known: dict[int, MinuteFigures], first: int, end: int, *, budget: float
    ) -> bool:
        """True when every minute of [first, end) is known. A chunk of minutes is read in one
        query; its size is set by the orders created in it (from the id range, two index
        probes), so that a minute of peak traffic and an idle hour cost about the same."""
        began = time.monotonic()
        chunk = 16
        stop = end
        while True:
            while stop > first and stop - 1 in known:
                stop -= 1
            if stop <= first:
                return True
            if time.monotonic() - began >= budget:
                return False
            start = stop - 1
            while start > first and start - 1 not in known and stop - start < chunk:
                start -= 1
            while (
                stop - start > 1
                and selectors.orders_created_between(start=_at(start), end=_at(stop))
                > HISTORY_CHUNK_ORDERS
            ):
                start = stop - (stop - start) // 2
            computed = selectors.campaign_minutes(
                campaign_id=self.campaign_id, start=_at(start), end=_at(stop)
            )
            figures = {m: computed.get(m, MinuteFigures()) for m in range(start, stop)}
            known.update(figures)
            self._save(figures)
            chunk = min(240, 2 * (stop - start))
            stop = start

    def _save(self, figures: dict[int, MinuteFigures]) -> None:
        values = {
            str(minute): json.dumps([f.accepted, f.paid, sorted(f.latency.items())])
            for minute, f in figures.items()
        }
        try:
            pipe = fast.client().pipeline(transaction=False)
            pipe.hset(self.key, mapping=values)
            pipe.expire(self.key, HISTORY_KEPT_SECONDS)
            pipe.execute()
        except redis.RedisError:
            log.warning("minute history not kept", exc_info=True)
