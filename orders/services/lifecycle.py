"""Client and sweep driven moves: cancel, expire held orders, and the periodic sweep that
finds work whose nudge was lost (a crash between commit and publish, a Redis restart) and
refunds a worker left unanswered."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from coupons import services as coupons_services
from orders import selectors, waiting_line
from orders.errors import NotCancellable
from orders.models import (
    CANCELLABLE,
    PARKED,
    CallbackDelivery,
    Order,
    Payment,
    Reservation,
    cancel_refusal,
    parking_state,
)
from orders.services.holds import holds_close
from orders.services.nudges import nudge_callbacks, nudge_payments, nudge_reservations
from orders.services.settlement import refunds_unowed_settle
from orders.services.transitions import (
    PaymentMove,
    order_move,
    orders_move,
    orders_park,
    payments_move,
)

log = logging.getLogger(__name__)


@transaction.atomic
def order_cancel(*, client_id: int, public_id: str, actor: str, livemode: bool = True) -> Order:
    """Cancel the client's order while it is not paid, releasing whatever it held.

    Raises NotFound, NotCancellable (terminal, or a charge may be in flight: its outcome
    decides). Cancelling a cancelled order returns it unchanged. An order of the other mode
    than the key's `livemode` is NotFound.
    """
    found = selectors.order_get(client_id=client_id, public_id=public_id, livemode=livemode)
    order = selectors.orders_for_update(order_ids=[found.pk])[0]
    if order.status == Order.Status.CANCELLED:
        return order
    if order.status not in CANCELLABLE:  # no payment to read: the status says no already
        raise NotCancellable(cancel_refusal(order.status, None))
    payment = Payment.objects.filter(order=order).first()
    refusal = cancel_refusal(order.status, payment.status if payment else None)
    if refusal:
        raise NotCancellable(refusal)
    now = timezone.now()
    holds_close([order], outcome=Reservation.Outcome.RELEASED, now=now)
    order_move(order, Order.Status.CANCELLED, actor=actor, now=now)
    return order


def holds_expire(*, limit: int = 500) -> int:
    """Expire reserved orders whose hold ran out with no money moving (the gateway kept
    refusing the charge since the first attempt); release the holds. Returns how many.

    The payments are read again under the orders' locks: a payment claim that committed after
    the locking read's snapshot (it locks the order, so it cannot commit after our lock) shows
    here, and its order is left to the charge's outcome."""
    now = timezone.now()
    with transaction.atomic():
        found = selectors.expired_holds_for_update(now=now, limit=limit)
        payments = selectors.payments_by_order(o.pk for o in found)
        orders = [
            o
            for o in found
            if o.pk not in payments or payments[o.pk].status not in selectors.PAYMENT_MOVING
        ]
        holds_close(orders, outcome=Reservation.Outcome.RELEASED, now=now)
        orders_move(
            orders,
            Order.Status.EXPIRED,
            actor="sweep:expire",
            now=now,
            reason=Order.Reason.PAYMENT_TIMEOUT,
        )
    return len(orders)


@dataclass(frozen=True)
class SweepReport:
    expired: int
    coupons_expired: int
    lines_nudged: int
    payments_nudged: bool
    callbacks_nudged: bool
    refunds_settled: int


def pipeline_sweep() -> SweepReport:
    """Drive on everything nobody is driving: lines with waiting orders (forced when they went
    stale: their nudge was lost), payments and callbacks due, holds past their time, and the
    refunds of charges whose order no longer waited for them that are still unanswered (the
    settlement worker asks once, right after recording the charge; it may have died, or the
    gateway not answered). Rebuilds a line's Redis counters when Redis lost them. Cheap when
    idle: indexed EXISTS queries, and one over the few refunds."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.STALE_AFTER_SECONDS)
    expired = 0
    while (batch := holds_expire()) > 0:
        expired += batch
    coupons_expired = coupons_services.coupons_expire(now=now)
    stale = set(selectors.stale_received_campaigns(before=stale_before))
    live_lines = selectors.live_campaigns()
    for campaign_id in live_lines:
        if not waiting_line.queue_known(campaign_id):
            last, live = selectors.queue_tickets(campaign_id=campaign_id)
            waiting_line.queue_rebuild(campaign_id, last_ticket=last, live=live)
    aside = selectors.lines_aside()
    waiting_line.aside_set({line: aside.get(line, 0) for line in {*live_lines, *aside}})
    waiting = selectors.waiting_campaigns(now=now)
    for campaign_id in waiting:
        nudge_reservations(campaign_id, force=campaign_id in stale)
    payments_due = selectors.payments_due_exist(now=now, stale_before=stale_before)
    if payments_due:
        nudge_payments(force=True)
    callbacks_due = selectors.callbacks_due_exist(now=now)
    if callbacks_due:
        nudge_callbacks(force=True)
    refunds_settled = refunds_unowed_settle(actor="sweep:refund", before=stale_before)
    if expired or stale:
        log.info("sweep: expired %s holds; lines gone stale: %s", expired, sorted(map(str, stale)))
    return SweepReport(
        expired=expired,
        coupons_expired=coupons_expired,
        lines_nudged=len(waiting),
        payments_nudged=payments_due,
        callbacks_nudged=callbacks_due,
        refunds_settled=refunds_settled,
    )


# --- Dead (parked) work, replayed by staff ---------------------------------------------------


@transaction.atomic
def payments_replay(*, order_ids: Collection[int], actor: str) -> list[int]:
    """Parked payments back to work: to `unknown` with a fresh attempt budget, so the next
    attempt first asks the gateway what happened. Returns the ids of the orders replayed."""
    now = timezone.now()
    orders = selectors.orders_for_update(order_ids=order_ids)
    parked = list(
        Payment.objects.select_for_update(no_key=True)
        .filter(order__in=orders, status=Payment.Status.PARKED)
        .order_by("pk")
    )
    for payment in parked:
        payment.attempts, payment.next_attempt_at = 0, now
    payments_move(
        [PaymentMove(p, Payment.Status.UNKNOWN, {"replay": True}) for p in parked],
        actor=actor,
        now=now,
    )
    if parked:
        transaction.on_commit(partial(nudge_payments, force=True))
    return [p.order_id for p in parked]


@transaction.atomic
def callbacks_replay(*, delivery_ids: Collection[int], actor: str) -> list[int]:
    """Failed (given up) callback deliveries back to pending with a fresh attempt budget.
    Returns the ids of the deliveries replayed."""
    now = timezone.now()
    replayed = list(
        CallbackDelivery.objects.select_for_update(no_key=True)
        .filter(pk__in=list(delivery_ids), state=CallbackDelivery.State.FAILED)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    CallbackDelivery.objects.filter(pk__in=replayed).update(
        state=CallbackDelivery.State.PENDING,
        attempts=0,
        next_attempt_at=now,
        last_error=f"replayed by {actor}",
        updated_at=now,
    )
    if replayed:
        transaction.on_commit(partial(nudge_callbacks, force=True))
    return replayed


@transaction.atomic
def orders_unpark(*, order_ids: Collection[int], actor: str) -> list[int]:
    """Parked orders back into their line, at the head (they keep their place by id).
    Returns the ids of the orders returned."""
    now = timezone.now()
    orders = [
        o for o in selectors.orders_for_update(order_ids=order_ids) if parking_state(o) == PARKED
    ]
    orders_park(orders, Order.Status.RECEIVED, actor=actor, now=now)
    for campaign_id in {o.campaign_id for o in orders}:
        back = sum(1 for o in orders if o.campaign_id == campaign_id)
        transaction.on_commit(partial(waiting_line.tickets_back, campaign_id, back))
        transaction.on_commit(partial(nudge_reservations, campaign_id, force=True))
    return [o.pk for o in orders]
