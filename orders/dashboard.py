"""What the staff admin's campaign and backlog pages show, read fast enough to answer within
half a second with millions of orders (README, Staff admin).

The figures come from the selectors; this module puts them together and decides what may be
a few seconds old:

- Coupon, budget and stock counters are read from their rows on every request.
- Orders by status (one GROUP BY, ~0.1 s for a million orders) and the hot products are cached
  for LIVE_SECONDS, the pages' refresh period, so a room of staff costs one query per period.
- Throughput and accept-to-paid times are kept per minute. A minute is final FINAL_AFTER
  seconds after it ended (its orders and payments have committed by then) and is then kept in
  Redis for good; only the minutes since are read again. History not yet kept (a first look
  at a long campaign, or after Redis lost it) is filled in newest first, at most
  HISTORY_BUDGET_SECONDS per request and the rest in a background thread; the page says how
  much is in.
- Queue depths come from the broker's lists; workers from Celery's inspect, asked in the
  background so that no page waits for a worker's reply.

Redis is forgetful here too: without it, history is recomputed and nothing is lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, TypeVar

import redis
from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import connection
from django.utils import timezone

from config import fast
from coupons import selectors as coupons_selectors
from coupons.models import Campaign
from orders import selectors, waiting_line
from orders.models import CallbackDelivery, Order, Payment
from orders.selectors import LATENCY_BASE, MinuteFigures
from shop import selectors as shop_selectors

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

log = logging.getLogger(__name__)

LIVE_SECONDS = 5  # the pages refresh themselves this often; slow figures are cached as long
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
RECENT_MINUTES = 15
WHOLE_CAMPAIGN_BINS = 120  # points of the whole-campaign charts
RATE_WINDOW = timedelta(seconds=60)  # consume rates of the payments and callbacks queues
WORKERS_FRESH_SECONDS = 5.0
WORKERS_INSPECT_TIMEOUT = 1.0
PARKED_SHOWN = 20
# Background threads (history filling, asking the workers). Tests turn them off: a thread has
# its own database connection, which cannot see a test's uncommitted rows.
BACKGROUND = True


# --- Campaign page ----------------------------------------------------------------------------


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
    coupons_redeemed: int
    orders_by_status: dict[str, int]
    orders_total: int
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
    slow = _cached(
        f"admin:campaign:{campaign_id}:slow",
        lambda: {
            "by_status": selectors.campaign_orders_by_status(campaign_id=campaign_id),
            "hot": selectors.campaign_hot_products(campaign_id=campaign_id),
        },
    )
    by_status = {status: slow["by_status"].get(status, 0) for status in Order.Status.values}
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
        coupons_redeemed=by_status[Order.Status.PAID] + by_status[Order.Status.REFUNDED],
        orders_by_status=by_status,
        orders_total=sum(by_status.values()),
        hot_products=slow["hot"],
        line=line,
        drain_rate=rate,
        estimated_wait_seconds=waiting_line.estimate(line.waiting if line else 0, rate),
        recent=recent,
        whole=whole,
        read_at=now,
    )


def _cached(key: str, compute: Callable[[], T], seconds: int = LIVE_SECONDS) -> T:
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
        budget = HISTORY_BUDGET_SECONDS if BACKGROUND else math.inf
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


# --- Backlog page -----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFigures:
    name: str
    messages: int | None  # None: the broker could not be asked
    oldest_age_seconds: float | None
    oldest_age_exact: bool  # False: a lower bound (first seen by this page)
    work: str  # what the queue's messages stand for
    work_waiting: int | None
    rate_per_second: float | None
    drain_seconds: int | None


@dataclass(frozen=True)
class LineFigures:
    line: selectors.LineWaiting
    campaign: Campaign | None
    drain_rate: float
    drain_seconds: int | None
    oldest_age_seconds: float | None
    ceiling: int


@dataclass(frozen=True)
class WorkerFigures:
    name: str
    queues: list[str]


@dataclass(frozen=True)
class WorkersSeen:
    workers: list[WorkerFigures]
    asked_at: datetime | None  # None: not asked yet (the page shows them a moment later)
    error: str = ""


@dataclass(frozen=True)
class BacklogFigures:
    queues: list[QueueFigures]
    lines: list[LineFigures]
    workers: WorkersSeen
    limits: list[shop_selectors.LimitInForce]
    gateway_tokens: float | None
    parked_payments: list[Payment]
    parked_payments_count: int
    parked_orders: list[Order]
    parked_orders_count: int
    failed_callbacks: list[CallbackDelivery]
    failed_callbacks_count: int
    read_at: datetime = field(default_factory=timezone.now)


def queue_names() -> list[str]:
    """Every queue the pipeline routes to (settings.CELERY_TASK_ROUTES), in a stable order."""
    routed = [route["queue"] for route in settings.CELERY_TASK_ROUTES.values()]
    names = [*routed, settings.CELERY_TASK_DEFAULT_QUEUE]
    return list(dict.fromkeys(names))


def backlog_figures() -> BacklogFigures:
    now = timezone.now()
    campaigns = {c.pk: c for c in coupons_selectors.campaign_list()}
    lines = []
    for line in selectors.lines_waiting(campaign_ids=campaigns):
        campaign = campaigns.get(line.campaign_id) if line.campaign_id else None
        ended = campaign is not None and campaign.status_at(now) == Campaign.PublicStatus.ENDED
        if ended and not (line.waiting or line.reserved or line.parked):
            continue  # a finished campaign with nothing left: not backlog
        rate = waiting_line.drain_rate(line.campaign_id)
        ceiling = (
            campaign.backlog_ceiling
            if campaign is not None and campaign.backlog_ceiling is not None
            else settings.BACKLOG_CEILING
        )
        lines.append(
            LineFigures(
                line=line,
                campaign=campaign,
                drain_rate=rate,
                drain_seconds=_drain(line.waiting, rate),
                oldest_age_seconds=(now - line.oldest_created_at).total_seconds()
                if line.oldest_created_at
                else None,
                ceiling=ceiling,
            )
        )
    parked_payments_count = selectors.parked_payments().count()
    callbacks_waiting, _ = selectors.callbacks_pending()
    work = {
        "reservations": (
            "orders waiting in line",
            sum(x.line.waiting for x in lines),
            sum(x.drain_rate for x in lines),
        ),
        "payments": (
            "orders holding, to charge",
            max(0, sum(x.line.reserved for x in lines) - parked_payments_count),
            selectors.orders_settled_since(since=now - RATE_WINDOW) / RATE_WINDOW.total_seconds(),
        ),
        "callbacks": (
            "callbacks to deliver",
            callbacks_waiting,
            selectors.callbacks_delivered_since(since=now - RATE_WINDOW)
            / RATE_WINDOW.total_seconds(),
        ),
    }
    return BacklogFigures(
        queues=queues_figures(work),
        lines=lines,
        workers=workers_alive(),
        limits=shop_selectors.rate_limits_in_force(),
        gateway_tokens=_bucket_tokens("gateway"),
        parked_payments=list(selectors.parked_payments()[:PARKED_SHOWN]),
        parked_payments_count=parked_payments_count,
        parked_orders=list(selectors.parked_orders()[:PARKED_SHOWN]),
        parked_orders_count=selectors.parked_orders().count(),
        failed_callbacks=list(selectors.failed_callbacks()[:PARKED_SHOWN]),
        failed_callbacks_count=selectors.failed_callbacks().count(),
        read_at=now,
    )


def _drain(waiting: int | None, rate: float | None) -> int | None:
    if not waiting:
        return 0
    if not rate:
        return None  # not draining: no estimate
    return math.ceil(waiting / rate)


@cache
def _broker() -> redis.Redis:
    """The Celery broker (a Redis server whose lists are the queues), with short time-outs:
    a page must not hang on it."""
    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL, socket_timeout=0.5, socket_connect_timeout=0.5
    )


# Kombu keeps a queue as a list (LPUSH in, BRPOP out: the oldest message is the last
# element), plus one list per priority step when priorities are used.
_PRIORITY_SUFFIXES = ["", *(f"\x06\x16{p}" for p in (3, 6, 9))]


def queues_figures(work: dict[str, tuple[str, int | None, float | None]]) -> list[QueueFigures]:
    """Depth and oldest message of each queue, from the broker (LLEN, LINDEX -1), and the
    work behind it with its consume rate. Our messages are nudges standing for many orders,
    so time to drain is reckoned from the work, not from the message count."""
    names = queue_names()
    try:
        pipe = _broker().pipeline(transaction=False)
        for name in names:
            for suffix in _PRIORITY_SUFFIXES:
                pipe.llen(name + suffix)
            pipe.lindex(name, -1)
        replies = pipe.execute()
    except redis.RedisError:
        log.warning("the broker could not be asked for queue depths", exc_info=True)
        replies = None
    found = []
    step = len(_PRIORITY_SUFFIXES) + 1
    for i, name in enumerate(names):
        messages = age = None
        exact = False
        if replies is not None:
            chunk = replies[i * step : (i + 1) * step]
            messages = sum(int(n) for n in chunk[:-1])
            age, exact = _message_age(chunk[-1]) if chunk[-1] else (None, False)
        what, waiting, rate = work.get(name, ("periodic sweep", None, None))
        found.append(
            QueueFigures(
                name=name,
                messages=messages,
                oldest_age_seconds=age,
                oldest_age_exact=exact,
                work=what,
                work_waiting=waiting,
                rate_per_second=rate,
                drain_seconds=_drain(waiting, rate) if waiting is not None else None,
            )
        )
    return found


def _message_age(raw: bytes) -> tuple[float | None, bool]:
    """How long the message has waited: from a publish time in its headers (`published_at`,
    Unix seconds) when the publisher stamps one; else since this page first saw it in the
    queue, a lower bound, remembered in Redis by the task id; None if unreadable."""
    try:
        message = json.loads(raw)
        headers = message.get("headers") or {}
    except (ValueError, AttributeError):
        return None, False
    now = time.time()
    published = headers.get("published_at")
    if isinstance(published, int | float):
        return max(0.0, now - float(published)), True
    task_id = headers.get("id") or (message.get("properties") or {}).get("correlation_id")
    if not task_id:
        return None, False
    key = f"cop:admin:seen:{task_id}"
    try:
        client = fast.client()
        client.set(key, now, nx=True, ex=3600)
        seen = float(client.get(key) or now)
    except redis.RedisError:
        return None, False
    return max(0.0, now - seen), False


def _bucket_tokens(bucket: str) -> float | None:
    """Tokens left in a global bucket (config.ratelimit), as of its last use."""
    try:
        tokens = fast.client().hget(f"cop:bucket:{bucket}", "tokens")
    except redis.RedisError:
        return None
    return float(tokens) if tokens is not None else None


# Workers: Celery's own inspect (`active_queues`), broadcast over the broker. A reply takes up
# to the inspect time-out, so it is asked in a background thread and its answer cached; the
# page shows the last answer and how old it is.
_WORKERS_KEY = "admin:workers"


def workers_alive() -> WorkersSeen:
    try:
        seen = django_cache.get(_WORKERS_KEY)
        stale = seen is None or time.time() - seen["at"] > WORKERS_FRESH_SECONDS
        if (
            BACKGROUND
            and stale
            and django_cache.add(
                f"{_WORKERS_KEY}:asking", 1, timeout=int(WORKERS_INSPECT_TIMEOUT) + 2
            )
        ):
            threading.Thread(target=workers_ask, name="admin-inspect", daemon=True).start()
    except redis.RedisError:
        return WorkersSeen(workers=[], asked_at=None, error="Redis is not answering.")
    if seen is None:
        return WorkersSeen(workers=[], asked_at=None)
    return WorkersSeen(
        workers=[WorkerFigures(name=n, queues=q) for n, q in sorted(seen["workers"].items())],
        asked_at=datetime.fromtimestamp(seen["at"], tz=UTC),
        error=seen.get("error", ""),
    )


def workers_ask() -> dict[str, list[str]]:
    """Ask every worker which queues it consumes; cache the answer. Returns it."""
    from config.celery import app  # noqa: PLC0415  (the Celery app imports Django settings)

    workers: dict[str, list[str]] = {}
    error = ""
    try:
        replies = app.control.inspect(timeout=WORKERS_INSPECT_TIMEOUT).active_queues() or {}
        for name, queues in replies.items():
            workers[name] = sorted(q.get("name", "?") for q in queues or [])
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    try:
        django_cache.set(
            _WORKERS_KEY, {"at": time.time(), "workers": workers, "error": error}, timeout=300
        )
        django_cache.delete(f"{_WORKERS_KEY}:asking")
    except redis.RedisError:
        log.warning("workers' answer not cached", exc_info=True)
    return workers
