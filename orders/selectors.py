"""Reads of orders, and the `*_for_update` querysets that orders' services lock with."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Exists, Max, Min, OuterRef, Q, QuerySet

from config import fast
from config.errors import NotFound
from orders.models import CallbackDelivery, Order, OrderLine, Payment, Reservation


def order_get(*, client_id: int, public_id: str) -> Order:
    """The client's order, or NotFound (another client's order does not exist for it)."""
    order = Order.objects.filter(client_id=client_id, public_id=public_id).first()
    if order is None:
        raise NotFound("No such order.")
    return order


def order_list(*, client_id: int, customer_id: str | None = None) -> QuerySet[Order]:
    qs = Order.objects.filter(client_id=client_id).prefetch_related("lines")
    if customer_id:
        qs = qs.filter(customer_id=customer_id)
    return qs.order_by("-id")


def lines_by_order(order_ids: Iterable[int]) -> dict[int, list[OrderLine]]:
    grouped: dict[int, list[OrderLine]] = defaultdict(list)
    for line in OrderLine.objects.filter(order_id__in=list(order_ids)).order_by("order_id", "id"):
        grouped[line.order_id].append(line)
    return grouped


def order_queue_spot(order: Order) -> fast.QueueSpot:
    """Where a received order stands in its campaign's line and how long it will wait.

    From Redis (tickets and measured drain rate); when Redis cannot tell, counted from the
    database, which is exact but slower.
    """
    if order.status != Order.Status.RECEIVED:
        return fast.NO_WAIT
    spot = fast.spot(order.campaign_id, order.queue_ticket)
    if spot is not None:
        return spot
    ahead = Order.objects.filter(
        campaign_id=order.campaign_id, status=Order.Status.RECEIVED, id__lte=order.id
    ).count()
    position = max(1, ahead)
    return fast.QueueSpot(
        position=position,
        estimated_wait_seconds=fast.estimate(position, fast.drain_rate(order.campaign_id)),
    )


# --- Locked reads, for services inside an atomic block -------------------------------------
# lock order: order → campaign → coupon → product → payment


def received_orders_for_update(*, campaign_id: int | None, limit: int) -> list[Order]:
    """The oldest received orders of one campaign's line, locked; rows another worker holds
    are skipped, not waited for."""
    qs = _line(campaign_id).order_by("id").select_for_update(skip_locked=True, no_key=True)
    return list(qs[:limit])


def orders_due_for_payment_for_update(*, now: datetime, limit: int) -> list[Order]:
    """Reserved orders whose payment has not started, or whose last attempt is due again
    (retry after 429, unknown outcome, or a `pending` lease that ran out: its worker died)."""
    due_payment = Payment.objects.filter(
        order=OuterRef("pk"),
        status__in=[Payment.Status.PENDING, Payment.Status.UNKNOWN, Payment.Status.RETRY],
        next_attempt_at__lte=now,
    )
    any_payment = Payment.objects.filter(order=OuterRef("pk"))
    return list(
        Order.objects.filter(status=Order.Status.RESERVED)
        .filter(Q(~Exists(any_payment)) | Q(Exists(due_payment)))
        .order_by("id")
        .select_for_update(skip_locked=True, no_key=True)[:limit]
    )


def orders_for_update(*, order_ids: Iterable[int]) -> list[Order]:
    return list(
        Order.objects.filter(pk__in=list(order_ids)).order_by("pk").select_for_update(no_key=True)
    )


def reservations_by_order(order_ids: Iterable[int]) -> dict[int, Reservation]:
    return {r.order_id: r for r in Reservation.objects.filter(order_id__in=list(order_ids))}


def payments_by_order(order_ids: Iterable[int]) -> dict[int, Payment]:
    return {p.order_id: p for p in Payment.objects.filter(order_id__in=list(order_ids))}


def expired_holds_for_update(*, now: datetime, limit: int) -> list[Order]:
    """Reserved orders whose hold ran out and on which no money may be moving: no payment
    yet, or only a "retry later" (nothing charged). An unknown outcome is settled first."""
    in_flight = Payment.objects.filter(
        order=OuterRef("pk"),
        status__in=[
            Payment.Status.PENDING,
            Payment.Status.UNKNOWN,
            Payment.Status.SUCCEEDED,
            Payment.Status.NOT_REQUIRED,
            Payment.Status.PARKED,
        ],
    )
    return list(
        Order.objects.filter(
            status=Order.Status.RESERVED,
            reservation__closed_at__isnull=True,
            reservation__expires_at__lte=now,
        )
        .filter(~Exists(in_flight))
        .order_by("id")
        .select_for_update(skip_locked=True, no_key=True, of=("self",))[:limit]
    )


def callbacks_due_for_update(*, now: datetime, limit: int) -> list[CallbackDelivery]:
    """Due deliveries, each only when no older delivery of the same order is still pending,
    so a chatbot hears an order's statuses in the order they happened."""
    older_pending = CallbackDelivery.objects.filter(
        order=OuterRef("order"), state=CallbackDelivery.State.PENDING, id__lt=OuterRef("id")
    )
    return list(
        CallbackDelivery.objects.filter(
            state=CallbackDelivery.State.PENDING, next_attempt_at__lte=now
        )
        .filter(~Exists(older_pending))
        .select_related("order__client")
        .order_by("next_attempt_at", "id")
        .select_for_update(skip_locked=True, no_key=True, of=("self",))[:limit]
    )


# --- What the sweep looks for --------------------------------------------------------------


def stale_received_campaigns(*, before: datetime) -> list[int | None]:
    """Campaigns with orders waiting since before `before`: their nudge may have been lost."""
    return list(
        Order.objects.filter(status=Order.Status.RECEIVED, updated_at__lt=before)
        .values_list("campaign_id", flat=True)
        .distinct()
    )


def waiting_campaigns() -> list[int | None]:
    """Lines with orders waiting, except those of paused campaigns (they wait on purpose)."""
    return list(
        Order.objects.filter(status=Order.Status.RECEIVED)
        .exclude(campaign__status="paused")
        .values_list("campaign_id", flat=True)
        .distinct()
    )


def payments_due_exist(*, now: datetime, stale_before: datetime) -> bool:
    no_payment = Order.objects.filter(
        status=Order.Status.RESERVED, updated_at__lt=stale_before, payment__isnull=True
    ).exists()
    return (
        no_payment
        or Payment.objects.filter(
            status__in=[Payment.Status.PENDING, Payment.Status.UNKNOWN, Payment.Status.RETRY],
            next_attempt_at__lte=now,
            order__status=Order.Status.RESERVED,
        ).exists()
    )


def callbacks_due_exist(*, now: datetime) -> bool:
    return CallbackDelivery.objects.filter(
        state=CallbackDelivery.State.PENDING, next_attempt_at__lte=now
    ).exists()


def queue_tickets(*, campaign_id: int | None) -> tuple[int, int | None]:
    """(highest ticket ever given, oldest waiting ticket) for rebuilding a lost line."""
    qs = _of_campaign(campaign_id)
    last = qs.aggregate(v=Max("queue_ticket"))["v"] or 0
    first = qs.filter(status=Order.Status.RECEIVED).aggregate(v=Min("queue_ticket"))["v"]
    return last, first


def oldest_waiting(*, campaign_id: int | None) -> int | None:
    """The id of the first order in a campaign's line (parked ones are out of it)."""
    return _line(campaign_id).order_by("id").values_list("id", flat=True).first()


def _of_campaign(campaign_id: int | None) -> QuerySet[Order]:
    """Orders of one campaign; None is the line of orders without a campaign."""
    if campaign_id is None:
        return Order.objects.filter(campaign__isnull=True)
    return Order.objects.filter(campaign_id=campaign_id)


def _line(campaign_id: int | None) -> QuerySet[Order]:
    """A campaign's line: its received orders, less the parked ones."""
    return _of_campaign(campaign_id).filter(status=Order.Status.RECEIVED, parked_at__isnull=True)
