"""Staff controls on orders, each recorded in the audit log (shop.AuditEntry) in the same
transaction as the change it makes: cancel an unpaid order, refund a paid one through the
gateway, replay dead work (parked payments, failed callbacks, parked orders), and resend
orders' latest callbacks.

The pipeline's own services do the work; these add who asked, and the state before and after.

# lock order: order → campaign → coupon → product → payment
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from coupons import services as coupons_services
from infra.errors import NotFound
from orders import selectors
from orders.errors import NotRefundable, RefundRefused, RefundUnknown
from orders.gateway.client import RefundOutcome
from orders.models import REFUND_ALLOWED, REFUNDABLE, CallbackDelivery, Order, Payment, Refund
from orders.services.callbacks import callbacks_resend, callbacks_resend_between
from orders.services.lifecycle import callbacks_replay, order_cancel, orders_unpark, payments_replay
from orders.services.settlement import RefundJob, refund_call, refund_key
from orders.services.transitions import refund_move
from shop import services as shop_services

if TYPE_CHECKING:
    from collections.abc import Collection
    from datetime import datetime


def _audit(order: Order, *, actor: str, action: str, before: dict, after: dict) -> None:
    shop_services.audit_record(
        actor=actor,
        action=action,
        target_type="order",
        target_id=order.pk,
        target_repr=str(order.public_id),
        before=before,
        after=after,
    )


def _locked(order_id: int) -> Order:
    orders = selectors.orders_for_update(order_ids=[order_id])
    if not orders:
        raise NotFound("No such order.")
    return orders[0]


@transaction.atomic
def staff_order_cancel(*, order_id: int, actor: str) -> Order:
    """`order_cancel` for staff, by the order's id: releases what the order held (stock,
    coupon, budget) and leaves its line. Raises NotFound, NotCancellable (paid, finished, or a
    charge may be in flight). Audited when it changed something; a cancelled order is
    returned unchanged."""
    order = _locked(order_id)
    before = order.status
    order = order_cancel(
        client_id=order.client_id,
        public_id=str(order.public_id),
        actor=actor,
        livemode=order.livemode,
    )
    if order.status != before:
        _audit(
            order,
            actor=actor,
            action="order.cancel",
            before={"status": before},
            after={"status": order.status},
        )
    return order


# --- Refunds: the settlement pattern -----------------------------------------------------------


def order_refund(*, order_id: int, actor: str) -> Order:
    """Refund a paid order: the charge refunded at the gateway, the discount returned to the
    campaign's budget, the coupon not given back (docs/integrator-guide.md, Order statuses:
    `refunded`).

    As settlement does it: (a) a short transaction checks the order is paid and moves its
    Refund row to `pending` (created at the first ask, with the key); (b) the gateway is
    asked outside any transaction, with the key `refund-<order id>`, a few times while the
    outcome is unknown: the gateway replays a key's first answer, so no charge is refunded
    twice; (c) a second short transaction moves the refund to succeeded and the order to
    refunded, gives the discount back and writes the audit entry (or records `failed` or
    `unknown` on the refund). Raises NotFound, NotRefundable (not paid), RefundRefused (the
    gateway said no; nothing moved), RefundUnknown (no definite answer: the order stays paid,
    asking again is safe). An order already refunded is returned unchanged.
    """
    job = _refund_claim(order_id=order_id, actor=actor)
    if job is None:
        return Order.objects.get(pk=order_id)
    outcome = refund_call(job=job) if job.amount else None
    return _refund_record(job, outcome, actor=actor)


@transaction.atomic
def _refund_claim(*, order_id: int, actor: str) -> RefundJob | None:
    order = _locked(order_id)
    if order.status == Order.Status.REFUNDED:
        return None
    if order.status not in REFUNDABLE:
        raise NotRefundable(f"The order is {order.status}.")
    payment = Payment.objects.filter(order=order).first()
    charged = payment is not None and payment.status == Payment.Status.SUCCEEDED
    free = payment is not None and payment.status == Payment.Status.NOT_REQUIRED
    if not (charged or free) or (charged and not payment.charge_id):  # type: ignore[union-attr]
        raise NotRefundable("The order has no settled charge to refund.")
    refund = Refund.objects.filter(order=order).first() or Refund(
        order=order,
        idempotency_key=refund_key(order),
        charge_id=payment.charge_id if charged else "",  # type: ignore[union-attr]
        amount=payment.amount if charged else 0,  # type: ignore[union-attr]
    )
    job = RefundJob(
        order_id=order.pk,
        idempotency_key=refund.idempotency_key,
        charge_id=refund.charge_id,
        amount=refund.amount,
        livemode=order.livemode,
    )
    refund.last_error = ""
    refund_move(
        order,
        refund,
        Refund.Status.PENDING,
        actor=actor,
        now=timezone.now(),
        key=job.idempotency_key,
        charge=job.charge_id,
        amount=job.amount,
    )
    return job


def _refund_record(job: RefundJob, outcome: RefundOutcome | None, *, actor: str) -> Order:
    """`outcome` None: nothing was charged, so nothing goes through the gateway."""
    kind = outcome.kind if outcome else "succeeded"
    with transaction.atomic():
        order = _locked(job.order_id)
        refund = Refund.objects.get(order=order)  # locked with its order
        now = timezone.now()
        if kind == "succeeded":
            if order.status == Order.Status.PAID:  # else a concurrent refund recorded it
                refund_id = outcome.refund_id if outcome else None
                refund.refund_id = refund_id or ""
                refund_move(
                    order,
                    refund,
                    Refund.Status.SUCCEEDED,
                    actor=actor,
                    now=now,
                    refund=refund_id or "none: nothing was charged",
                    amount=job.amount,
                )
                if order.campaign_id:
                    coupons_services.budget_refund(
                        campaign_id=order.campaign_id, amount=order.discount
                    )
                _audit(
                    order,
                    actor=actor,
                    action="order.refund",
                    before={"status": Order.Status.PAID},
                    after={
                        "status": Order.Status.REFUNDED,
                        "refund": refund_id,
                        "amount": job.amount,
                        "discount_returned": order.discount,
                    },
                )
            return order
        target = Refund.Status.FAILED if kind == "failed" else Refund.Status.UNKNOWN
        error = (outcome.error if outcome else "") or ""
        # A concurrent ask may have recorded its answer first; this one's is then not a move.
        if target in REFUND_ALLOWED[refund.status]:
            refund.last_error = error[:2000]
            refund_move(
                order, refund, target, actor=actor, now=now, key=job.idempotency_key, error=error
            )
    # Raised after the commit, so the attempt stays on the order's record.
    if kind == "failed":
        raise RefundRefused(f"The gateway refused the refund: {outcome.error if outcome else ''}")
    raise RefundUnknown()


# --- Dead work, replayed by staff --------------------------------------------------------------


# The services below return what they replayed; these add the audit entry in the same
# transaction.


@transaction.atomic
def staff_payments_replay(*, order_ids: Collection[int], actor: str) -> int:
    """`payments_replay` (parked payments back to work, their outcome looked up first),
    audited. Returns how many were replayed."""
    replayed = payments_replay(order_ids=order_ids, actor=actor)
    _audit_replay(
        actor,
        "payments.replay",
        "payments",
        f"{len(replayed)} parked payment(s)",
        count=len(replayed),
        before={"status": Payment.Status.PARKED, "orders": replayed},
        after={"status": Payment.Status.UNKNOWN, "replayed": len(replayed)},
    )
    return len(replayed)


@transaction.atomic
def staff_callbacks_replay(*, delivery_ids: Collection[int], actor: str) -> int:
    """`callbacks_replay` (failed deliveries back to pending), audited."""
    replayed = callbacks_replay(delivery_ids=delivery_ids, actor=actor)
    _audit_replay(
        actor,
        "callbacks.replay",
        "callbacks",
        f"{len(replayed)} failed deliver(ies)",
        count=len(replayed),
        before={"state": CallbackDelivery.State.FAILED, "deliveries": replayed},
        after={"state": CallbackDelivery.State.PENDING, "replayed": len(replayed)},
    )
    return len(replayed)


@transaction.atomic
def staff_callbacks_resend(*, order_ids: Collection[int], actor: str) -> list[int]:
    """`callbacks_resend` (each order's latest status delivered again), audited: against the
    order when there is one, else as one entry for the batch. Returns the deliveries resent."""
    resent = callbacks_resend(order_ids=order_ids, actor=actor)
    before = {"deliveries": resent, "state": "delivered or failed"}
    after = {"state": CallbackDelivery.State.PENDING, "resent": len(resent)}
    if len(order_ids) == 1 and resent:
        order = Order.objects.get(pk=next(iter(order_ids)))
        _audit(order, actor=actor, action="callbacks.resend", before=before, after=after)
        return resent
    _audit_replay(
        actor,
        "callbacks.resend",
        "callbacks",
        f"latest callback of {len(resent)} order(s)",
        count=len(resent),
        before=before,
        after=after,
    )
    return resent


@transaction.atomic
def staff_callbacks_resend_between(
    *, since: datetime, until: datetime, actor: str, limit: int
) -> list[int]:
    """`callbacks_resend_between` (the latest status of every order whose latest change
    happened in [since, until)), audited with the range. Returns the deliveries resent."""
    resent = callbacks_resend_between(since=since, until=until, actor=actor, limit=limit)
    _audit_replay(
        actor,
        "callbacks.resend",
        "callbacks",
        f"latest callback of {len(resent)} order(s) changed {since:%Y-%m-%d %H:%M} to "
        f"{until:%Y-%m-%d %H:%M}",
        count=len(resent),
        before={"since": since.isoformat(), "until": until.isoformat(), "deliveries": resent},
        after={"state": CallbackDelivery.State.PENDING, "resent": len(resent)},
    )
    return resent


@transaction.atomic
def staff_orders_unpark(*, order_ids: Collection[int], actor: str) -> int:
    """`orders_unpark` (parked orders back at the head of their line), audited."""
    returned = orders_unpark(order_ids=order_ids, actor=actor)
    _audit_replay(
        actor,
        "orders.unpark",
        "orders",
        f"{len(returned)} parked order(s)",
        count=len(returned),
        before={"parked": returned},
        after={"returned_to_line": len(returned)},
    )
    return len(returned)


def _audit_replay(
    actor: str,
    action: str,
    target_type: str,
    target_repr: str,
    *,
    count: int,
    before: dict[str, object],
    after: dict[str, object],
) -> None:
    """One audit entry for a replay that did something (an empty one is not recorded)."""
    if count:
        shop_services.audit_record(
            actor=actor,
            action=action,
            target_type=target_type,
            target_repr=target_repr,
            before=before,
            after=after,
        )
