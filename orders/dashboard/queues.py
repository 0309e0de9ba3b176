"""The figures of the staff admin's backlog page: the waiting lines, the queues' depths from
the broker's lists, the workers from Celery's inspect (asked in the background so that no
page waits for a worker's reply), the limits in force and what is parked or failed.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

import redis
from django.conf import settings
from django.core.cache import cache as django_cache
from django.utils import timezone

from coupons import selectors as coupons_selectors
from coupons.models import Campaign
from infra import fast, ratelimit
from orders import selectors, waiting_line
from orders.dashboard import common
from orders.models import CallbackDelivery, Order, Payment
from shop import selectors as shop_selectors

log = logging.getLogger(__name__)

RATE_WINDOW = timedelta(seconds=60)  # consume rates of the payments and callbacks queues
WORKERS_FRESH_SECONDS = 5.0
WORKERS_INSPECT_TIMEOUT = 1.0
PARKED_SHOWN = 20


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
    callbacks_pending: int
    # Since the oldest status change still to deliver happened (None: nothing pending).
    callbacks_oldest_age_seconds: float | None
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
                drain_seconds=_drain(line.waiting + line.reserved, rate),
                oldest_age_seconds=(now - line.oldest_created_at).total_seconds()
                if line.oldest_created_at
                else None,
                ceiling=ceiling,
            )
        )
    parked_payments_count = selectors.parked_payments().count()
    callbacks_waiting, callbacks_oldest = selectors.callbacks_pending()
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
        callbacks_pending=callbacks_waiting,
        callbacks_oldest_age_seconds=(now - callbacks_oldest).total_seconds()
        if callbacks_oldest
        else None,
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
    """Tokens left in a global bucket (infra.ratelimit), as of its last use."""
    try:
        tokens = fast.client().hget(ratelimit.bucket_key(bucket), "tokens")
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
            common.BACKGROUND
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
    from celery import current_app as app  # noqa: PLC0415  (the app config/celery.py made)

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
