"""Callbacks: each status change of an order POSTed to the client's callback_url, signed,
retried with exponential backoff and jitter for at least CALLBACK_RETRY_HOURS, in order per
order.

Signature (docs/integrator-guide.md, Callbacks): `X-Signature: t=<unix seconds>,v1=<hex
HMAC-SHA256 of "<t>.<body>">` keyed with the client's webhook secret; while a secret is
being rotated, one v1 entry per valid secret, the old one first. Each POST also names its
event (`X-Event-Id`: the delivery row, one per status change, repeated by every redelivery),
its attempt (`X-Delivery-Id`) and when the change happened (`X-Event-Time`, the row's
creation: the move's time).

Staff may resend an order's latest status (`callbacks_resend`, `callbacks_resend_between`):
the same row back to pending, so the same event id and time, with new delivery ids.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, partial

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from infra import ratelimit
from infra.keepalive import TRANSPORT_ERRORS
from infra.sql import prepared_count, prepared_rows
from orders import metrics, selectors, sql
from orders.models import TERMINAL, CallbackDelivery
from orders.netguard import GuardedPools, guarded_pool
from orders.services.nudges import CALLBACK, drain, nudge_callbacks, recruit
from shop import selectors as shop_selectors
from shop.models import RateLimit

log = logging.getLogger(__name__)

_UNSENT = "not sent: waiting for the client's callback rate limit"


@dataclass(frozen=True)
class CallbackJob:
    delivery_id: int
    client_id: int
    attempt: int
    url: str
    body: bytes
    secret: str
    event_time: datetime  # when the status changed (the row's creation): sent as X-Event-Time
    request_id: str = ""  # of the request that placed the order: sent as X-Request-ID
    # The secret being rotated out, while it is still valid: it signs beside `secret`.
    previous_secret: str = ""


def _mac(*, secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature(*, secret: str, body: bytes, timestamp: int, previous_secret: str = "") -> str:
    """`t=<stamp>,v1=<mac>`; during a rotation `t=<stamp>,v1=<old>,v1=<new>`, so a receiver
    that still holds the old secret and one that holds the new both find their entry."""
    macs = [_mac(secret=s, body=body, timestamp=timestamp) for s in (previous_secret, secret) if s]
    return ",".join([f"t={timestamp}", *(f"v1={mac}" for mac in macs)])


def signature_verify(
    *, secret: str, body: bytes, header: str, now: float | None = None, tolerance: int | None = None
) -> bool:
    """What a callback receiver must do (docs/integrator-guide.md shows it to chatbot
    integrators): recompute the HMAC over "<t>.<body>", compare it in constant time with
    every v1 entry (two while the secret is rotated) and accept when one matches, and refuse
    a timestamp outside the replay window, so that a captured callback cannot be sent again
    later."""
    try:
        parts = [part.split("=", 1) for part in header.split(",")]
        (stamp,) = [int(value) for key, value in parts if key == "t"]
    except ValueError:  # a part without "=", no t, two of them, or one not a number
        return False
    given = [value for key, value in parts if key == "v1"]
    window = settings.CALLBACK_SIGNATURE_TOLERANCE if tolerance is None else tolerance
    if not given or abs((time.time() if now is None else now) - stamp) > window:
        return False
    expected = _mac(secret=secret, body=body, timestamp=stamp).encode()
    # Every entry compared, none skipped on a match: the time taken tells nothing.
    matches = [hmac.compare_digest(value.encode(), expected) for value in given]
    return any(matches)


# Each wait is drawn between this share of its nominal delay and all of it: deliveries that
# failed together (a chatbot's outage) come back spread out, not all in the same second.
_JITTER_FLOOR = 0.75


def retry_delays() -> list[float]:
    """The nominal wait before each retry, the first first: CALLBACK_RETRY_BASE_SECONDS
    doubling up to CALLBACK_RETRY_MAX_DELAY_SECONDS, for as many retries as it takes their
    shortest jittered waits (`_JITTER_FLOOR` of each) to cover CALLBACK_RETRY_HOURS. So a
    delivery is tried for at least that long (docs/integrator-guide.md, Callbacks), and
    given up after its last entry."""
    window = settings.CALLBACK_RETRY_HOURS * 3600
    base = settings.CALLBACK_RETRY_BASE_SECONDS
    cap = settings.CALLBACK_RETRY_MAX_DELAY_SECONDS
    if not 0 < base <= cap:
        raise ImproperlyConfigured(
            "CALLBACK_RETRY_BASE_SECONDS must be above 0 and at most "
            "CALLBACK_RETRY_MAX_DELAY_SECONDS"
        )
    delays: list[float] = []
    covered = 0.0
    while covered < window:
        delay = min(cap, base * 2.0 ** len(delays))
        delays.append(delay)
        covered += delay * _JITTER_FLOOR
    return delays


@dataclass(frozen=True)
class RetryStep:
    """One attempt of a delivery that keeps failing, in seconds: the wait before it (drawn
    between `wait_min` and `wait_max`) and when it comes, counted from the first attempt."""

    attempt: int
    wait_min: float
    wait_max: float
    since_min: float
    since_max: float


def retry_schedule() -> list[RetryStep]:
    """Every attempt `retry_delays` allows, the first (at once) first; what
    docs/integrator-guide.md tabulates (`manage.py callback_schedule --write` writes the table)."""
    steps = [RetryStep(1, 0.0, 0.0, 0.0, 0.0)]
    for delay in retry_delays():
        last = steps[-1]
        low = delay * _JITTER_FLOOR
        steps.append(
            RetryStep(last.attempt + 1, low, delay, last.since_min + low, last.since_max + delay)
        )
    return steps


@cache
def _http() -> GuardedPools:
    # http.client's keep-alive pools (infra.keepalive): less than half of urllib3's client CPU
    # per POST (docs/performance.md); every connection resolves the name and checks the
    # addresses (DNS rebinding), no proxy from the environment, no redirect followed (it
    # could point a signed body anywhere).
    return guarded_pool(
        max_connections=settings.PAYMENT_CONCURRENCY, timeout=settings.CALLBACK_TIMEOUT
    )


def callbacks_claim_batch(*, limit: int) -> list[CallbackJob]:
    """Claim due deliveries with a lease (next_attempt_at pushed out), so a worker that dies
    mid-POST leaves them to be sent again later (receivers must accept duplicates). Two
    statements, each atomic on its own: supersede, then claim (no transaction around them;
    the claim sees the superseded rows as committed)."""
    now = timezone.now()
    metrics.callbacks_superseded(_callbacks_coalesce(now))
    lease_until = now + _lease()
    rows = prepared_rows(sql.CALLBACKS_CLAIM, [now, limit, lease_until, now, now])
    return [
        CallbackJob(
            delivery_id=delivery_id,
            client_id=client_id,
            attempt=attempt,
            url=url,
            body=json.dumps(
                json.loads(payload) if isinstance(payload, str) else payload, separators=(",", ":")
            ).encode(),
            secret=secret,
            request_id=request_id,
            previous_secret=previous_secret,
            event_time=event_time,
        )
        for (
            delivery_id,
            client_id,
            attempt,
            url,
            payload,
            secret,
            request_id,
            previous_secret,
            event_time,
        ) in sorted(rows)
    ]


_PENDING = CallbackDelivery.State.PENDING.value
_TERMINAL = sorted(TERMINAL)


def _callbacks_coalesce(now: datetime) -> int:
    """One POST per order carries its latest state (docs/integrator-guide.md, Callbacks): a
    pending delivery of a passing status (received, reserved) whose order has a newer one
    pending is superseded, never sent, once either is due. A terminal status is always
    delivered. Returns how many were superseded.

    Never one that another worker has claimed and is POSTing now (its lease runs: the claim
    set next_attempt_at exactly a lease after updated_at, which a recorded outcome never
    leaves): superseding it would free its successor to be sent beside it, and the chatbot
    could hear the two in the wrong order."""
    return prepared_count(sql.CALLBACKS_COALESCE, [now, now, _TERMINAL, now, _lease()])


def _lease() -> timedelta:
    """How long a claimed delivery is left to its worker before it is due again."""
    return timedelta(seconds=settings.CALLBACK_TIMEOUT * 2 + 5)


def event_id(*, delivery_id: int) -> str:
    """X-Event-Id: the delivery row stands for one status change of one order, and every
    attempt to deliver it reads the same row, so its id is the event's (no column to write
    on the hot path). A superseded change has its own id and is never sent."""
    return f"evt_{delivery_id}"


def callback_send(job: CallbackJob) -> str:
    """POST one callback; "" on any 2xx, else a short reason. Never raises."""
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Signature": signature(
            secret=job.secret,
            body=job.body,
            timestamp=stamp,
            previous_secret=job.previous_secret,
        ),
        "X-Event-Id": event_id(delivery_id=job.delivery_id),
        # Per attempt, random: a replayed delivery starts its attempts again from one.
        "X-Delivery-Id": uuid.uuid4().hex,
        "X-Event-Time": rfc3339(moment=job.event_time),
    }
    if job.request_id:
        headers["X-Request-ID"] = job.request_id
    try:
        response = _http().request("POST", job.url, body=job.body, headers=headers)
    except TRANSPORT_ERRORS as exc:
        return f"{type(exc).__name__}: {exc}"[:500]
    return "" if 200 <= response.status < 300 else f"HTTP {response.status}"  # noqa: PLR2004


def rfc3339(*, moment: datetime) -> str:
    """UTC with microseconds, e.g. 2026-12-06T13:12:04.123456Z (RFC 3339)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def callbacks_record(
    results: Sequence[tuple[CallbackJob, str]], *, unsent: Sequence[tuple[CallbackJob, float]] = ()
) -> None:
    """Delivered, retried later with backoff and jitter (`retry_delays`), or given up
    (FAILED, replayable by staff) after its last retry. `unsent` deliveries waited for their
    client's rate limit: tried again after the wait given, the attempt not counted. One
    statement for the batch."""
    now = timezone.now()
    delays = retry_delays()
    waits = {job.delivery_id: wait for job, wait in unsent}
    rows: list[tuple[object, ...]] = []
    for job, error in [*results, *((job, _UNSENT) for job, _ in unsent)]:
        # Each row: state, attempts, delivered_at, last_error and next_attempt_at (None: kept
        # as they are), and the outcome counted once the write is known to have happened.
        if error is _UNSENT:
            wait = timedelta(seconds=waits[job.delivery_id])
            row = (_PENDING, job.attempt - 1, None, None, now + wait, "unsent")
        elif not error:
            row = (CallbackDelivery.State.DELIVERED.value, job.attempt, now, "", None, "delivered")
        elif job.attempt > len(delays):
            row = (CallbackDelivery.State.FAILED.value, job.attempt, None, error, None, "failed")
        else:
            jitter = random.uniform(_JITTER_FLOOR, 1.0)  # noqa: S311 (spread, not a secret)
            wait = timedelta(seconds=delays[job.attempt - 1] * jitter)
            row = (_PENDING, job.attempt, None, error, now + wait, "error")
        rows.append((job.delivery_id, job.attempt, *row))
    if not rows:
        return
    columns = [list(column) for column in zip(*rows, strict=True)]
    written = prepared_rows(sql.CALLBACKS_RECORD, [now, *columns])
    outcomes = Counter(outcome for (outcome,) in written)
    metrics.callback_outcomes(outcomes)
    metrics.parked("callback", outcomes["failed"])


def callbacks_drain(*, lane: int = 0) -> int:
    """The callback worker's loop: claim, POST concurrently, record. Returns deliveries tried.
    A full claim recruits one more worker (nudges.recruit) before its POSTs go out."""
    with ThreadPoolExecutor(
        max_workers=settings.PAYMENT_CONCURRENCY, thread_name_prefix="callback"
    ) as pool:

        def step() -> int:
            with metrics.batch("callback") as size:
                jobs = callbacks_claim_batch(limit=settings.CALLBACK_BATCH_SIZE)
                if len(jobs) >= settings.CALLBACK_BATCH_SIZE:
                    recruit(CALLBACK, "all")
                callbacks_send_and_record(pool, jobs)
                size.append(len(jobs))
            if size[0]:
                log.info("callback batch: lane %s, %s deliveries", lane, size[0])
            return size[0]

        return drain(
            CALLBACK,
            "all",
            step,
            renudge=partial(nudge_callbacks, force=True, lane=lane),
            linger=settings.CALLBACK_LINGER_SECONDS,
            fill=settings.CALLBACK_BATCH_SIZE,
            lane=lane,
        )


def callbacks_send_and_record(pool: ThreadPoolExecutor, jobs: list[CallbackJob]) -> None:
    """A claimed batch POSTed concurrently (those its clients' limits let through), outside
    any transaction, then its outcomes recorded: the callback worker's batch after its claim
    (bench/stage_costs.py measures this same function)."""
    if not jobs:
        return
    go, unsent = _within_client_limits(jobs)
    sent = list(zip(go, pool.map(callback_send, go), strict=True))
    callbacks_record(sent, unsent=unsent)


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


# --- Resent by staff -------------------------------------------------------------------------

# A delivery that is done with, either way; a pending one is on its way already, and a
# superseded one was replaced by a newer status (never the newest of its order).
RESENDABLE = (CallbackDelivery.State.DELIVERED.value, CallbackDelivery.State.FAILED.value)


@transaction.atomic
def callbacks_resend(*, order_ids: Collection[int], actor: str) -> list[int]:
    """Each order's latest status delivered again: its newest delivery row, delivered or
    given up, back to pending, due at once, with a fresh attempt budget (the whole retry
    schedule). The row is the event, so every POST of the resend carries its `X-Event-Id` and
    `X-Event-Time` and a new `X-Delivery-Id`; the body is the document of that change, signed
    with the client's secrets of the moment. An order whose newest delivery is still pending is
    left as it is (it is on its way), as is one without callbacks. Locks the rows resent (no
    key update), never the orders. After commit: the callback workers nudged. Returns the ids of
    the deliveries resent."""
    now = timezone.now()
    newest = selectors.latest_callbacks(order_ids=order_ids).values_list("pk", flat=True)
    resent = list(
        CallbackDelivery.objects.select_for_update(no_key=True)
        .filter(pk__in=list(newest), state__in=RESENDABLE)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    CallbackDelivery.objects.filter(pk__in=resent).update(
        state=CallbackDelivery.State.PENDING,
        attempts=0,
        next_attempt_at=now,
        delivered_at=None,
        last_error=f"resent by {actor}",
        updated_at=now,
    )
    if resent:
        transaction.on_commit(partial(nudge_callbacks, force=True))
    return resent


def callbacks_resend_between(
    *, since: datetime, until: datetime, actor: str, limit: int
) -> list[int]:
    """`callbacks_resend` for the orders whose latest status changed in [since, until) (when
    their newest delivery was made), at most `limit` of them, the oldest changes first.
    Returns the ids of the deliveries resent."""
    order_ids = selectors.latest_callbacks_between(since=since, until=until).values_list(
        "order_id", flat=True
    )[:limit]
    return callbacks_resend(order_ids=list(order_ids), actor=actor)
