"""Callbacks: each status change of an order POSTed to the client's callback_url, signed,
retried with backoff, in order per order.

Signature (API.md): `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
keyed with the client's webhook secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, partial

import urllib3
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from urllib3.exceptions import HTTPError as TransportError

from config import ratelimit
from config.sql import rows_update
from orders import metrics, selectors
from orders.models import TERMINAL, CallbackDelivery
from orders.netguard import guarded_pool
from orders.services.nudges import CALLBACK, drain, nudge_callbacks
from shop import selectors as shop_selectors
from shop.models import RateLimit

_UNSENT = "not sent: waiting for the client's callback rate limit"


@dataclass(frozen=True)
class CallbackJob:
    delivery_id: int
    client_id: int
    attempt: int
    url: str
    body: bytes
    secret: str
    request_id: str = ""  # of the request that placed the order: sent as X-Request-ID


def signature(*, secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def signature_verify(
    *, secret: str, body: bytes, header: str, now: float | None = None, tolerance: int | None = None
) -> bool:
    """What a callback receiver must do (README shows it to chatbot integrators): recompute
    the HMAC over "<t>.<body>", compare in constant time, and refuse a timestamp outside the
    replay window, so that a captured callback cannot be sent again later."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        stamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    window = settings.CALLBACK_SIGNATURE_TOLERANCE if tolerance is None else tolerance
    if abs((time.time() if now is None else now) - stamp) > window:
        return False
    expected = signature(secret=secret, body=body, timestamp=stamp).split("v1=", 1)[1]
    return hmac.compare_digest(given.encode(), expected.encode())


@cache
def _http() -> urllib3.PoolManager:
    # urllib3: 0.9 instead of httpx's 1.5 ms of client CPU per POST, measured on this machine;
    # every connection resolves the name and checks the addresses (DNS rebinding), no proxy
    # from the environment, no redirect followed (it could point a signed body anywhere).
    return guarded_pool(
        max_connections=settings.PAYMENT_CONCURRENCY, timeout=settings.CALLBACK_TIMEOUT
    )


def callbacks_claim_batch(*, limit: int) -> list[CallbackJob]:
    """Claim due deliveries with a lease (next_attempt_at pushed out), so a worker that dies
    mid-POST leaves them to be sent again later (receivers must accept duplicates)."""
    now = timezone.now()
    with transaction.atomic():
        metrics.callbacks_superseded(_callbacks_coalesce(now))
        due = selectors.callbacks_due_for_update(now=now, limit=limit)
        lease_until = now + timedelta(seconds=settings.CALLBACK_TIMEOUT * 2 + 5)
        for delivery in due:
            delivery.attempts += 1
            delivery.next_attempt_at = lease_until
            delivery.updated_at = now
        rows_update(CallbackDelivery, due, ["attempts", "next_attempt_at", "updated_at"])
    return [
        CallbackJob(
            delivery_id=d.pk,
            client_id=d.order.client_id,
            attempt=d.attempts,
            url=d.url,
            body=json.dumps(d.payload, separators=(",", ":")).encode(),
            secret=d.order.client.webhook_secret,
            request_id=d.order.request_id,
        )
        for d in due
    ]


def _callbacks_coalesce(now: datetime) -> int:
    """One POST per order carries its latest state (API.md): a due delivery of a passing
    status (received, reserved) whose order has a newer one pending is superseded, never
    sent. A terminal status is always delivered. Returns how many were superseded."""
    newer = CallbackDelivery.objects.filter(
        order=OuterRef("order"), state=CallbackDelivery.State.PENDING, id__gt=OuterRef("id")
    )
    return (
        CallbackDelivery.objects.filter(
            state=CallbackDelivery.State.PENDING, next_attempt_at__lte=now
        )
        .exclude(order_status__in=TERMINAL)
        .filter(Exists(newer))
        .update(
            state=CallbackDelivery.State.SUPERSEDED,
            last_error="superseded by a newer status of the order",
            updated_at=now,
        )
    )


def callback_send(job: CallbackJob) -> str:
    """POST one callback; "" on any 2xx, else a short reason. Never raises."""
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Signature": signature(secret=job.secret, body=job.body, timestamp=stamp),
    }
    if job.request_id:
        headers["X-Request-ID"] = job.request_id
    try:
        response = _http().request("POST", job.url, body=job.body, headers=headers, redirect=False)
    except (TransportError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    return "" if 200 <= response.status < 300 else f"HTTP {response.status}"  # noqa: PLR2004


def callbacks_record(
    results: Sequence[tuple[CallbackJob, str]], *, unsent: Sequence[tuple[CallbackJob, float]] = ()
) -> None:
    """Delivered, retried later with backoff, or given up (FAILED, replayable by staff) after
    CALLBACK_MAX_ATTEMPTS. `unsent` deliveries waited for their client's rate limit: tried
    again after the wait given, the attempt not counted."""
    now = timezone.now()
    waits = {job.delivery_id: wait for job, wait in unsent}
    results = [*results, *((job, _UNSENT) for job, _ in unsent)]
    with transaction.atomic():
        deliveries = {
            d.pk: d
            for d in CallbackDelivery.objects.select_for_update(no_key=True)
            .filter(pk__in=[j.delivery_id for j, _ in results])
            .order_by("pk")
        }
        outcomes: Counter[str] = Counter()
        for job, error in results:
            delivery = deliveries[job.delivery_id]
            if delivery.state != CallbackDelivery.State.PENDING or delivery.attempts != job.attempt:
                continue
            delivery.updated_at = now
            if error is _UNSENT:
                outcomes["unsent"] += 1
                delivery.attempts -= 1
                delivery.next_attempt_at = now + timedelta(seconds=waits[job.delivery_id])
            elif not error:
                outcomes["delivered"] += 1
                delivery.state, delivery.delivered_at, delivery.last_error = (
                    CallbackDelivery.State.DELIVERED,
                    now,
                    "",
                )
            elif delivery.attempts >= settings.CALLBACK_MAX_ATTEMPTS:
                outcomes["failed"] += 1
                delivery.state, delivery.last_error = CallbackDelivery.State.FAILED, error
            else:
                outcomes["error"] += 1
                wait = min(600.0, 2.0**delivery.attempts) * random.uniform(0.5, 1.0)  # noqa: S311
                delivery.next_attempt_at, delivery.last_error = now + timedelta(seconds=wait), error
        rows_update(
            CallbackDelivery,
            list(deliveries.values()),
            ["state", "attempts", "delivered_at", "last_error", "next_attempt_at", "updated_at"],
        )
        transaction.on_commit(partial(metrics.callback_outcomes, outcomes))
        metrics.parked("callback", outcomes["failed"])


def callbacks_drain() -> int:
    """The callback worker's loop: claim, POST concurrently, record. Returns deliveries tried."""
    with ThreadPoolExecutor(
        max_workers=settings.PAYMENT_CONCURRENCY, thread_name_prefix="callback"
    ) as pool:

        def step() -> int:
            with metrics.batch("callback") as size:
                jobs = callbacks_claim_batch(limit=settings.CALLBACK_BATCH_SIZE)
                if jobs:
                    go, unsent = _within_client_limits(jobs)
                    sent = list(zip(go, pool.map(callback_send, go), strict=True))
                    callbacks_record(sent, unsent=unsent)
                size.append(len(jobs))
            return size[0]

        return drain(
            CALLBACK,
            "all",
            step,
            renudge=partial(nudge_callbacks, force=True),
            linger=settings.CALLBACK_LINGER_SECONDS,
            fill=settings.CALLBACK_BATCH_SIZE,
        )


def _within_client_limits(
    jobs: list[CallbackJob],
) -> tuple[list[CallbackJob], list[tuple[CallbackJob, float]]]:
    """Split jobs into those each client's callback limit lets through now, and the rest with
    how long to wait (one global bucket per client, shared by every worker)."""
    limit = shop_selectors.rate_limit(RateLimit.Scope.CALLBACKS)
    by_client: dict[int, list[CallbackJob]] = defaultdict(list)
    for job in jobs:
        by_client[job.client_id].append(job)
    go: list[CallbackJob] = []
    unsent: list[tuple[CallbackJob, float]] = []
    for client_id, client_jobs in by_client.items():
        grant = ratelimit.take(f"callbacks:{client_id}", limit, len(client_jobs))
        go += client_jobs[: grant.granted]
        unsent += [(job, max(grant.retry_after, 0.05)) for job in client_jobs[grant.granted :]]
    return go, unsent
