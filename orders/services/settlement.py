"""Settlement: charging reserved orders through the gateway, in batches, without ever
charging twice.

(a) a short transaction claims due orders and marks their Payment `pending` (a lease);
(b) the gateway is called outside any transaction, concurrently, each call with the
    payment's stored idempotency key (derived from the order, the same on every attempt);
(c) a second short transaction records the outcomes, and claims the next batch (its (a)):
    one commit per batch (payments_record_and_claim), and still a committed claim before
    any call and no transaction open across one.
An unknown outcome (time-out, 5xx, a worker killed mid-call so its lease ran out) is settled
by asking the gateway for the order's charges, never by guessing; only if the gateway has
none is the charge sent again, with the same key.

No charge without its order: a charge that succeeded for an order no longer waiting for it
(expired, cancelled) is recorded, and refunded at the gateway (`refunds_unowed_settle`).
Refunds follow the same pattern, with the key `refund-<order id>` (staff refunds of paid
orders too: orders.services.controls).

# lock order: order → campaign → coupon → product → payment. `payments_record` writes its
# payment rows before the holds' campaign and products: a payment row is only ever reached
# under its order's lock, so no two transactions hold it apart, and the rows every worker
# shares are taken last, held from there to the commit only.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache, partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from infra import ratelimit
from orders import metrics, selectors
from orders.gateway.client import ChargeOutcome, GatewayClient, RefundOutcome
from orders.models import REFUND_ALLOWED, Order, Payment, Refund, Reservation
from orders.services.holds import holds_clock_start, holds_close
from orders.services.nudges import PAY, drain, nudge_payments, recruit
from orders.services.transitions import PaymentMove, orders_move, payments_move, refund_move
from shop import selectors as shop_selectors
from shop.models import RateLimit

log = logging.getLogger(__name__)

PS = Payment.Status
# Waiting this long for a gateway token is pacing; longer, and the worker lets go.
MAX_PACING_SECONDS = 1.0
UNSENT = "not sent: waiting for the gateway rate limit"


@dataclass(frozen=True)
class ChargeJob:
    order_id: int
    payment_id: int
    attempt: int
    idempotency_key: str
    amount: int
    currency: str
    reference: str
    customer: str
    ask_first: bool  # the last attempt's outcome is unknown: look it up before charging
    livemode: bool = True  # False: a test order, charged at the test gateway only


@dataclass
class Claimed:
    jobs: list[ChargeJob] = field(default_factory=list)
    settled_free: int = 0  # payable 0: paid without a charge


def payment_key(order: Order) -> str:
    return f"order-{order.public_id}"


def gateway(livemode: bool = True) -> GatewayClient:
    """One pooled client per worker process and mode: live orders are charged at
    PAYMENT_GATEWAY_URL, test orders only at PAYMENT_TEST_GATEWAY_URL, the sandbox unless set
    (docs/integrator-guide.md, Test mode). The order's own `livemode` picks it."""
    return _gateway_of(bool(livemode))  # one cache key per mode, however it was asked for


@cache
def _gateway_of(livemode: bool) -> GatewayClient:
    if livemode:
        url, key = settings.PAYMENT_GATEWAY_URL, settings.PAYMENT_GATEWAY_KEY
    else:
        url, key = settings.PAYMENT_TEST_GATEWAY_URL, settings.PAYMENT_TEST_GATEWAY_KEY
    return GatewayClient(
        base_url=url,
        api_key=key,
        timeout=settings.PAYMENT_GATEWAY_TIMEOUT,
        pool_size=settings.PAYMENT_CONCURRENCY,
    )


def _backoff(attempts: int) -> float:
    """Exponential with full-ish jitter: base * 2^attempts * U(0.5, 1), at most 5 minutes."""
    delay = settings.PAYMENT_RETRY_BASE_SECONDS * 2.0 ** min(attempts, 12)
    return min(300.0, delay) * random.uniform(0.5, 1.0)  # noqa: S311


def payments_claim_batch(*, limit: int) -> Claimed:
    """Claim up to `limit` reserved orders that are due a charge attempt, oldest first. Orders
    with nothing to pay are paid here and now. A first attempt starts its hold's clock
    (holds_clock_start). A hold whose clock ran out with nothing charged (the gateway kept
    refusing) is left to the sweep to expire: no charge starts on an expired hold."""
    with transaction.atomic():
        return _claim(limit=limit, now=timezone.now())


def _claim(*, limit: int, now: datetime) -> Claimed:
    """`payments_claim_batch`'s work, in the caller's transaction."""
    claimed = Claimed()
    actor = "worker:settle"
    orders = selectors.orders_due_for_payment_for_update(now=now, limit=limit)
    if not orders:
        return claimed
    ids = [o.pk for o in orders]
    payments = selectors.payments_by_order(ids)
    holds = selectors.reservations_by_order(ids)
    lease_until = now + timedelta(seconds=settings.PAYMENT_LEASE_SECONDS)
    moves: list[PaymentMove] = []
    free: list[Order] = []
    first_attempts: list[int] = []
    ask_first: dict[int, bool] = {}
    for order in orders:
        payment = payments.get(order.pk)
        hold = holds[order.pk]
        nothing_charged_yet = payment is None or payment.status == PS.RETRY
        if nothing_charged_yet and hold.expires_at is not None and hold.expires_at <= now:
            continue
        if order.payable == 0:
            free.append(order)
            free_payment = Payment(order=order, idempotency_key=payment_key(order), amount=0)
            moves.append(PaymentMove(free_payment, PS.NOT_REQUIRED))
            continue
        if payment is None:
            payment = Payment(
                order=order,
                idempotency_key=payment_key(order),
                amount=order.payable,
                currency=order.currency,
                attempts=1,
                next_attempt_at=lease_until,
                created_at=now,
            )
            moves.append(PaymentMove(payment, PS.PENDING))
            first_attempts.append(order.pk)
        else:
            if payment.status == PS.PENDING:  # the lease ran out: its worker died mid-call
                moves.append(PaymentMove(payment, PS.UNKNOWN, {"error": "lease expired"}))
            ask_first[order.pk] = payment.status in (PS.PENDING, PS.UNKNOWN)
            moves.append(PaymentMove(payment, PS.PENDING))
            payment.attempts += 1
            payment.next_attempt_at = lease_until
    holds_close(free, outcome=Reservation.Outcome.SOLD, now=now)
    orders_move(
        free,
        Order.Status.PAID,
        actor=actor,
        now=now,
        data={o.pk: {"charge": "none: nothing to pay"} for o in free},
    )
    payments_move(moves, actor=actor, now=now)
    holds_clock_start(first_attempts, now=now)
    claimed.settled_free = len(free)
    by_id = {o.pk: o for o in orders}
    claimed.jobs = [
        ChargeJob(
            order_id=p.order_id,
            payment_id=p.pk,
            attempt=p.attempts,
            idempotency_key=p.idempotency_key,
            amount=p.amount,
            currency=p.currency,
            reference=str(by_id[p.order_id].public_id),
            customer=by_id[p.order_id].customer_id,
            ask_first=ask_first.get(p.order_id, False),
            livemode=by_id[p.order_id].livemode,
        )
        for p in {id(m.payment): m.payment for m in moves}.values()
        if p.status == PS.PENDING
    ]
    return claimed


def _claim_size() -> int:
    """As many payments as can be sent well within their lease at the gateway limit's pace,
    so that a paced batch never outlives its claim."""
    limit = shop_selectors.rate_limit(RateLimit.Scope.GATEWAY)
    if limit.per_second is None:
        return settings.SETTLEMENT_BATCH_SIZE
    paced = int(limit.per_second * settings.PAYMENT_LEASE_SECONDS / 3)
    return max(1, min(settings.SETTLEMENT_BATCH_SIZE, paced))


def _gateway_token() -> float:
    """Take one token of the global gateway limit, sleeping while one is due soon (pacing,
    not a busy loop). 0.0 when taken; else how long until one, when that is too long to hold
    the worker for."""
    limit = shop_selectors.rate_limit(RateLimit.Scope.GATEWAY)
    while True:
        grant = ratelimit.take("gateway", limit)
        if grant.granted:
            return 0.0
        if grant.retry_after > MAX_PACING_SECONDS:
            return grant.retry_after
        time.sleep(grant.retry_after)
        metrics.gateway_waited(grant.retry_after)


def _gateway_tokens(want: int) -> int:
    """Take up to `want` tokens of the global gateway limit in one call, without waiting: a
    batch's first requests then cost no round trip each. Returns how many were granted."""
    return ratelimit.take(
        "gateway", shop_selectors.rate_limit(RateLimit.Scope.GATEWAY), want
    ).granted


def payment_attempt(client: GatewayClient, job: ChargeJob, prepaid: bool = False) -> ChargeOutcome:
    """One attempt, outside any transaction; every gateway request takes a token of the global
    limit first (`prepaid`: the batch already took the first request's, see _gateway_tokens).
    After an unknown outcome, the gateway's record decides; a charge is (re)sent only when it
    has none, and with the same key. A test order's requests go to the test gateway and take
    no token: the live gateway's limit is not spent on them."""
    if job.ask_first:
        if job.livemode and not prepaid and (wait := _gateway_token()):
            return ChargeOutcome(kind="retry", retry_after=wait, error=UNSENT)
        prepaid = False
        charges = client.charges_for(reference=job.reference)
        if isinstance(charges, ChargeOutcome):
            return charges  # the look-up failed: refused (retry) or unanswered (unknown)
        for status in ("succeeded", "declined"):
            found = [c for c in charges if c.get("status") == status]
            if found:
                return ChargeOutcome(kind=status, charge_id=str(found[0].get("id", "")))  # type: ignore[arg-type]
    if job.livemode and not prepaid and (wait := _gateway_token()):
        return ChargeOutcome(kind="retry", retry_after=wait, error=UNSENT)
    return client.charge(
        idempotency_key=job.idempotency_key,
        amount=job.amount,
        currency=job.currency,
        reference=job.reference,
        customer=job.customer,
    )


def _numbered(live: list[bool]) -> list[tuple[int, bool]]:
    """Each flag with the number of live ones before it."""
    found, count = [], 0
    for is_live in live:
        found.append((count, is_live))
        count += is_live
    return found


def _attempt(job: ChargeJob, prepaid: bool) -> ChargeOutcome:
    """`payment_attempt` at the gateway of the job's mode."""
    return payment_attempt(gateway(job.livemode), job, prepaid)


def payments_record(results: Sequence[tuple[ChargeJob, ChargeOutcome]]) -> dict[str, int]:
    """Write the outcomes: succeeded → paid (hold sold), declined → payment_failed (hold
    released), unknown/retry → tried again later with backoff, or parked after
    PAYMENT_MAX_ATTEMPTS (staff replay it). An attempt that moved nothing (our own rate limit
    held it back, or the gateway refused it with 429/409) goes back to `retry` uncounted. An
    outcome whose claim is stale (the payment was claimed again since) is dropped: that later
    attempt owns the payment.

    An order no longer reserved (it expired or was cancelled while its charge was out) keeps
    its status: the payment's outcome is still recorded, and a charge that succeeded gets a
    pending Refund, which `refunds_unowed_settle` takes to the gateway after this commits.
    `unowed` counts those refunds."""
    counts, _ = payments_record_and_claim(results, limit=0)
    return counts


def payments_record_and_claim(
    results: Sequence[tuple[ChargeJob, ChargeOutcome]], *, limit: int
) -> tuple[dict[str, int], Claimed]:
    """`payments_record`, and in the same transaction `payments_claim_batch(limit=limit)`
    (none when `limit` is 0): one commit where there were two.

    The promises hold as they did with two transactions (docs/architecture.md, "Money moves
    once"): the next batch's claim, its payments `pending` under a lease, is committed
    before any of its charges is sent (the caller sends them after this returns), so a crash
    mid-call is recovered by a look-up by reference, never by a second charge; no transaction
    is open across a gateway call (this one opens after the last call of its batch and
    commits before the first of the next). A claim that fails rolls back to its savepoint
    and claims nothing: the outcomes are recorded all the same, and the next step claims on
    its own."""
    now = timezone.now()
    with transaction.atomic():
        counts, paid, failed = _record(results, now)
        claimed = Claimed()
        if limit:
            try:
                with transaction.atomic():
                    claimed = _claim(limit=limit, now=timezone.now())
            except Exception:
                log.exception("payment claim after a record failed; the next step claims again")
        # The holds last: they write the campaign's budget (and a released hold's stock), rows
        # every payment worker's batch shares, so they are held only from here to the commit.
        holds_close(paid, outcome=Reservation.Outcome.SOLD, now=now)
        holds_close(failed, outcome=Reservation.Outcome.RELEASED, now=now)
    return counts, claimed


def _record(
    results: Sequence[tuple[ChargeJob, ChargeOutcome]], now: datetime
) -> tuple[dict[str, int], list[Order], list[Order]]:
    """`payments_record`'s moves, in the caller's transaction, but the holds: returns the
    counts and the orders paid and failed, whose holds the caller closes."""
    actor = "worker:settle"
    counts = {"succeeded": 0, "declined": 0, "unknown": 0, "retry": 0, "unowed": 0}
    orders = {
        o.pk: o for o in selectors.orders_for_update(order_ids=[j.order_id for j, _ in results])
    }
    payments = selectors.payments_by_order(orders)
    moves: list[PaymentMove] = []
    paid: list[Order] = []
    failed: list[Order] = []
    unowed: list[Order] = []
    for job, outcome in results:
        order, payment = orders[job.order_id], payments[job.order_id]
        if payment.status != PS.PENDING or payment.attempts != job.attempt:
            continue
        counts[outcome.kind] += 1
        if outcome.kind in ("succeeded", "declined"):
            succeeded = outcome.kind == "succeeded"
            payment.charge_id = outcome.charge_id or ""
            target = PS.SUCCEEDED if succeeded else PS.DECLINED
            moved = order.status != Order.Status.RESERVED
            data = {"charge": outcome.charge_id, "order": order.status if moved else None}
            moves.append(PaymentMove(payment, target, data))
            if not moved:
                (paid if succeeded else failed).append(order)
            elif succeeded:
                unowed.append(order)
        elif outcome.error == UNSENT or outcome.kind == "retry":
            # Nothing moved at the gateway (our own limit held it back, or the gateway
            # refused it with 429 or 409): not an attempt, so a gateway at its quota never
            # parks payments. One whose outcome was unknown stays unknown, so that it is
            # still looked up first.
            payment.attempts -= 1
            payment.next_attempt_at = now + timedelta(seconds=outcome.retry_after or 1.0)
            if outcome.error != UNSENT:
                payment.last_error = (outcome.error or outcome.kind)[:2000]
            target = PS.UNKNOWN if job.ask_first else PS.RETRY
            moves.append(PaymentMove(payment, target, {"error": outcome.error}))
        elif payment.attempts >= settings.PAYMENT_MAX_ATTEMPTS:
            payment.last_error = (outcome.error or outcome.kind)[:2000]
            moves.append(PaymentMove(payment, PS.PARKED, {"error": outcome.error}))
            metrics.parked("payment")
        else:
            wait = (
                outcome.retry_after
                if outcome.kind == "retry" and outcome.retry_after
                else _backoff(payment.attempts)
            )
            payment.next_attempt_at = now + timedelta(seconds=wait)
            payment.last_error = (outcome.error or outcome.kind)[:2000]
            target = PS.UNKNOWN if outcome.kind == "unknown" else PS.RETRY
            moves.append(PaymentMove(payment, target, {"error": outcome.error}))
    orders_move(paid, Order.Status.PAID, actor=actor, now=now)
    orders_move(failed, Order.Status.PAYMENT_FAILED, actor=actor, now=now)
    payments_move(moves, actor=actor, now=now)
    _refunds_open(
        orders=unowed,
        payments={m.payment.order_id: m.payment for m in moves},
        actor=actor,
        now=now,
    )
    counts["unowed"] = len(unowed)
    return counts, paid, failed


def _refunds_open(
    *, orders: Sequence[Order], payments: dict[int, Payment], actor: str, now: datetime
) -> None:
    """A pending Refund of the whole charge for each order that is not waiting for it. The
    order keeps its status: it told the client why it ended, and it holds nothing any more
    (its hold was released when it moved), so only the money goes back."""
    for order in orders:
        payment = payments[order.pk]
        refund = Refund(
            order=order,
            idempotency_key=refund_key(order),
            charge_id=payment.charge_id,
            amount=payment.amount,
            created_at=now,
        )
        refund_move(
            order,
            refund,
            Refund.Status.PENDING,
            actor=actor,
            now=now,
            key=refund.idempotency_key,
            charge=refund.charge_id,
            amount=refund.amount,
            reason=f"charged after the order was {order.status}",
        )


def payments_drain(*, lane: int = 0) -> int:
    """The settlement worker's loop: claim, call concurrently, record. Returns orders handled.
    A full claim recruits one more worker (nudges.recruit) before its calls go out: claims
    skip each other's rows, and every worker takes its tokens from the one global bucket.

    A batch's record claims the next batch in its transaction (payments_record_and_claim):
    one commit per batch, not two. Group commit waits before that record, so that claims
    stay at least SETTLEMENT_LINGER_SECONDS apart when the batches are small, as they were
    when the wait came between a record and the next claim. A batch claimed by the loop's
    last record is sent and recorded before the worker returns."""
    held: list[Claimed] = []  # a batch claimed by the last record, not yet sent
    linger = settings.SETTLEMENT_LINGER_SECONDS
    with ThreadPoolExecutor(
        max_workers=settings.PAYMENT_CONCURRENCY, thread_name_prefix="charge"
    ) as pool:

        def batch(claim_next: bool) -> int:
            with metrics.batch("settle") as size:
                limit = _claim_size()
                claimed_at = time.monotonic()
                claimed = held.pop() if held else payments_claim_batch(limit=limit)
                handled = claimed.settled_free + len(claimed.jobs)
                if handled >= limit:
                    recruit(PAY, "all")
                if claimed.jobs:
                    outcomes = _charges(pool, claimed.jobs)
                if claim_next and 0 < handled < settings.SETTLEMENT_BATCH_SIZE:
                    # Group commit: the next claim (which this batch's record makes) comes
                    # `linger` after this one. The wait is before the record, never between a
                    # claim and its calls: a claimed payment waits for nothing.
                    time.sleep(max(0.0, claimed_at + linger - time.monotonic()))
                if claimed.jobs:
                    counts, following = payments_record_and_claim(
                        list(zip(claimed.jobs, outcomes, strict=True)),
                        limit=_claim_size() if claim_next else 0,
                    )
                    if following.settled_free or following.jobs:
                        held.append(following)
                    if counts["unowed"]:
                        refunds_unowed_settle()
                size.append(handled)
            if size[0]:
                log.info("payment batch: lane %s, %s orders", lane, size[0])
            return size[0]

        handled = drain(
            PAY,
            "all",
            partial(batch, True),
            renudge=partial(nudge_payments, force=True, lane=lane),
            fill=settings.SETTLEMENT_BATCH_SIZE,
            lane=lane,
        )
        while held:  # claimed by the last record: sent now, recorded without a next claim
            handled += batch(False)
        return handled


def _charges(pool: ThreadPoolExecutor, jobs: list[ChargeJob]) -> list[ChargeOutcome]:
    """Every job's attempt, concurrently, outside any transaction. Tokens of the live
    gateway's limit for live orders only (payment_attempt)."""
    live = [j.livemode for j in jobs]
    granted = _gateway_tokens(sum(live))
    prepaid = [is_live and n < granted for n, is_live in _numbered(live)]
    outcomes = list(pool.map(_attempt, jobs, prepaid))
    metrics.gateway_outcomes([o.kind for j, o in zip(jobs, outcomes, strict=True) if j.livemode])
    return outcomes


# --- Refunds: the same pattern, the key derived from the order ---------------------------------

# A refund is asked for a few times while its outcome is unknown (the gateway replays a key's
# first answer, so no charge is refunded twice), then left `unknown`: asking again is safe.
REFUND_ATTEMPTS = 3
REFUND_RETRY_SECONDS = 0.5
UNOWED_REFUNDS_BATCH = 20


def refund_key(order: Order) -> str:
    """One refund per order, ever: the key is derived from the order, the same on every try."""
    return f"refund-{order.public_id}"


@dataclass(frozen=True)
class RefundJob:
    order_id: int
    idempotency_key: str
    charge_id: str
    amount: int  # fen refunded at the gateway (0: the order was free, nothing was charged)
    livemode: bool = True  # False: refunded at the test gateway, where it was charged


def refund_call(*, job: RefundJob) -> RefundOutcome:
    """Outside any transaction. Every try takes a token of the global gateway limit, like the
    charges, and sends the same key."""
    client = gateway(job.livemode)
    outcome = None
    for attempt in range(REFUND_ATTEMPTS):
        if attempt:
            wait = outcome.retry_after if outcome and outcome.retry_after else 0.0
            time.sleep(min(2.0, max(wait, REFUND_RETRY_SECONDS * attempt)))
        if job.livemode and _gateway_token():  # the test gateway is not the live limit's
            continue
        outcome = client.refund(
            idempotency_key=job.idempotency_key, charge_id=job.charge_id, amount=job.amount
        )
        if outcome.kind in ("succeeded", "failed"):
            return outcome
        log.warning("refund %s: %s (%s)", job.idempotency_key, outcome.kind, outcome.error)
    if outcome is None:
        outcome = RefundOutcome("retry", error=UNSENT)
    return outcome


def refunds_unowed_settle(*, actor: str = "worker:settle", before: datetime | None = None) -> int:
    """Refund at the gateway the charges that succeeded for orders that were no longer waiting
    for them (their Refund is pending, or its answer was unknown), outside any transaction,
    then record each answer. `before`: only those untouched since (the sweep's leftovers, not
    the ones a worker is asking about now). Returns how many were settled (succeeded or
    failed); a refund still unanswered stays for the sweep."""
    jobs = [
        RefundJob(
            order_id=r.order_id,
            idempotency_key=r.idempotency_key,
            charge_id=r.charge_id,
            amount=r.amount,
            livemode=r.order_livemode,  # type: ignore[attr-defined]  # annotated by the selector
        )
        for r in selectors.refunds_unowed(before=before, limit=UNOWED_REFUNDS_BATCH)
    ]
    if not jobs:
        return 0
    results = [(job, refund_call(job=job)) for job in jobs]
    now = timezone.now()
    settled = 0
    with transaction.atomic():
        locked = selectors.orders_for_update(order_ids=[job.order_id for job in jobs])
        orders = {o.pk: o for o in locked}
        refunds = {r.order_id: r for r in Refund.objects.filter(order_id__in=list(orders))}
        for job, outcome in results:
            order, refund = orders[job.order_id], refunds[job.order_id]
            if outcome.kind == "retry":
                continue  # nothing was sent, or the gateway said "not now": still pending
            target = {"succeeded": Refund.Status.SUCCEEDED, "failed": Refund.Status.FAILED}.get(
                outcome.kind, Refund.Status.UNKNOWN
            )
            # Recorded by a concurrent settle already, or still unknown: not a move.
            if target not in REFUND_ALLOWED[refund.status]:
                continue
            refund.refund_id = outcome.refund_id or ""
            refund.last_error = (outcome.error or "")[:2000]
            said = {"refund": outcome.refund_id, "error": outcome.error}
            refund_move(
                order,
                refund,
                target,
                actor=actor,
                now=now,
                amount=job.amount,
                **{k: v for k, v in said.items() if v},
            )
            settled += target != Refund.Status.UNKNOWN
    return settled
