"""Reads of orders, and the `*_for_update` querysets that orders' services lock with."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Exists, F, Max, Min, OuterRef, Q, QuerySet, Subquery, Sum

from infra.errors import NotFound
from infra.sql import prepared_objects, prepared_rows
from orders import sql, waiting_line
from orders.models import (
    CallbackDelivery,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    Refund,
    Reservation,
)
from shop.models import Product


def order_get(*, client_id: int, public_id: str, livemode: bool = True) -> Order:
    """The client's order, or NotFound (another client's order does not exist for it, nor an
    order of the other mode than the key's: docs/integrator-guide.md, Test mode)."""
    found = prepared_objects(Order, sql.ORDER_BY_PUBLIC_ID, [public_id, client_id, livemode])
    if not found:
        raise NotFound("No such order.")
    return found[0]


def order_by_key(*, client_id: int, idempotency_key: str) -> Order | None:
    """The client's order placed with this Idempotency-Key, if any."""
    found = prepared_objects(Order, sql.ORDER_BY_KEY, [client_id, idempotency_key])
    return found[0] if found else None


def order_list(
    *, client_id: int, customer_id: str | None = None, livemode: bool = True
) -> QuerySet[Order]:
    qs = Order.objects.filter(client_id=client_id, livemode=livemode).prefetch_related("lines")
    if customer_id:
        qs = qs.filter(customer_id=customer_id)
    return qs.order_by("-id")


def lines_by_order(order_ids: Iterable[int]) -> dict[int, list[OrderLine]]:
    grouped: dict[int, list[OrderLine]] = defaultdict(list)
    for line in prepared_objects(OrderLine, sql.LINES_BY_ORDER, [list(order_ids)]):
        grouped[line.order_id].append(line)
    return grouped


LIVE = (Order.Status.RECEIVED, Order.Status.RESERVED)


def order_queue_spot(order: Order) -> waiting_line.QueueSpot:
    """Where an order not yet final stands and how long until it is final: its campaign's
    orders ahead of it, waiting or held for payment, at the line's measured drain.

    From Redis (tickets and measured drain rate); when Redis cannot tell, counted from the
    database, which is exact but slower.
    """
    if order.status not in LIVE:
        return waiting_line.NO_WAIT
    spot = waiting_line.spot(order.campaign_id, order.queue_ticket)
    if spot is not None:
        return spot
    ahead = Order.objects.filter(
        campaign_id=order.campaign_id, status__in=LIVE, id__lte=order.id
    ).count()
    position = max(1, ahead)
    return waiting_line.QueueSpot(
        position=position,
        estimated_wait_seconds=waiting_line.estimate(
            position, waiting_line.drain_rate(order.campaign_id)
        ),
    )


def campaign_backlog(*, campaign_id: int) -> dict[str, int]:
    """Orders of the campaign not yet final (waiting, or held for payment) and how long until
    the last of them is: from the line in Redis; counted in the database when Redis cannot
    tell."""
    spot = waiting_line.backlog(campaign_id)
    if spot is None:
        waiting = Order.objects.filter(campaign_id=campaign_id, status__in=LIVE).count()
        spot = waiting_line.QueueSpot(
            position=waiting, estimated_wait_seconds=waiting_line.estimate(waiting, 0.0)
        )
    return {"orders_waiting": spot.position, "estimated_wait_seconds": spot.estimated_wait_seconds}


# --- Locked reads, for services inside an atomic block -------------------------------------
# lock order: order → campaign → coupon → product → payment


def received_orders_for_update(*, campaign_id: int | None, limit: int) -> list[Order]:
    """The oldest received orders of one campaign's line, locked; rows another worker holds
    are skipped, not waited for."""
    if campaign_id is None:
        return prepared_objects(Order, sql.NO_CAMPAIGN_LINE_FOR_UPDATE, [limit])
    return prepared_objects(Order, sql.CAMPAIGN_LINE_FOR_UPDATE, [campaign_id, limit])


def orders_due_for_payment_for_update(*, now: datetime, limit: int) -> list[Order]:
    """Reserved orders whose payment has not started, or whose last attempt is due again
    (retry after 429, unknown outcome, or a `pending` lease that ran out: its worker died)."""
    return prepared_objects(Order, sql.ORDERS_DUE_FOR_PAYMENT, [now, limit])


def orders_for_update(*, order_ids: Iterable[int]) -> list[Order]:
    return prepared_objects(Order, sql.ORDERS_FOR_UPDATE, [list(order_ids)])


def reservations_by_order(order_ids: Iterable[int]) -> dict[int, Reservation]:
    rows = prepared_objects(Reservation, sql.RESERVATIONS_BY_ORDER, [list(order_ids)])
    return {r.order_id: r for r in rows}


def payments_by_order(order_ids: Iterable[int]) -> dict[int, Payment]:
    return {
        p.order_id: p for p in prepared_objects(Payment, sql.PAYMENTS_BY_ORDER, [list(order_ids)])
    }


# A payment in one of these may have moved money, or may still: its order is not expired.
PAYMENT_MOVING = (
    Payment.Status.PENDING,
    Payment.Status.UNKNOWN,
    Payment.Status.SUCCEEDED,
    Payment.Status.NOT_REQUIRED,
    Payment.Status.PARKED,
)


def expired_holds_for_update(*, now: datetime, limit: int) -> list[Order]:
    """Reserved orders whose hold ran out and on which no money may be moving: no payment
    yet, or only a "retry later" (nothing charged). An unknown outcome is settled first.
    A hold's clock starts at the first payment attempt (until then `expires_at` is null), so
    orders still waiting for the payment stage are never found here.

    The payment test is on this statement's snapshot: a claim that committed between it and
    the lock is not seen, so the caller reads the payments again under the lock."""
    in_flight = Payment.objects.filter(order=OuterRef("pk"), status__in=PAYMENT_MOVING)
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
    """Campaigns with orders waiting since before `before`: their nudge may have been lost
    (orders.sql.STALE_RECEIVED_CAMPAIGNS)."""
    return [campaign for (campaign,) in prepared_rows(sql.STALE_RECEIVED_CAMPAIGNS, [before])]


def waiting_campaigns(*, now: datetime) -> list[int | None]:
    """Lines with orders waiting, except those of paused campaigns whose window is still open
    (they wait on purpose; once it is over, their orders are rejected)
    (orders.sql.WAITING_CAMPAIGNS)."""
    return [campaign for (campaign,) in prepared_rows(sql.WAITING_CAMPAIGNS, [now])]


def live_campaigns() -> list[int | None]:
    """Lines with orders not yet final (waiting or held), paused campaigns included: the
    lines whose Redis counters must exist (orders.sql.LIVE_CAMPAIGNS), bounded by the orders
    in flight."""
    return [campaign for (campaign,) in prepared_rows(sql.LIVE_CAMPAIGNS, [])]


def lines_aside() -> dict[int | None, int]:
    """Per line, the orders held whose payment is being retried (the gateway refused it or
    did not answer, or staff must replay it): read from the held orders
    (orders.sql.LINES_ASIDE), so bounded by the orders in flight."""
    return dict(prepared_rows(sql.LINES_ASIDE, []))


def payments_due_exist(*, now: datetime, stale_before: datetime) -> bool:
    """An order held since before `stale_before` with no payment yet, or an open payment due
    again: read from order_settle_idx and payment_open_idx (orders.sql.PAYMENTS_DUE_EXIST)."""
    return bool(prepared_rows(sql.PAYMENTS_DUE_EXIST, [stale_before, now])[0][0])


def refunds_unowed(*, before: datetime | None, limit: int) -> list[Refund]:
    """Refunds of charges whose order was no longer waiting for them, not yet answered for
    good (pending, or unknown), oldest first; `before`: untouched since. A paid order's refund
    is staff's (orders.services.controls), so those are left out. Refunds are few: no index."""
    found = (
        Refund.objects.filter(status__in=[Refund.Status.PENDING, Refund.Status.UNKNOWN])
        .exclude(order__status=Order.Status.PAID)
        .annotate(order_livemode=F("order__livemode"))  # which gateway: the order's mode
    )
    if before is not None:
        found = found.filter(updated_at__lt=before)
    return list(found.order_by("pk")[:limit])


def callbacks_due_exist(*, now: datetime) -> bool:
    """A delivery due: read from callback_due_idx (orders.sql.CALLBACKS_DUE_EXIST)."""
    return bool(prepared_rows(sql.CALLBACKS_DUE_EXIST, [now])[0][0])


def queue_tickets(*, campaign_id: int | None) -> tuple[int, int]:
    """(highest ticket ever given, orders in the line) for rebuilding a lost line: the line
    is every order not yet final, less the parked ones. The first is read from the top of
    order_ticket_idx, the second from order_campaign_status_idx: neither grows with the
    orders already final."""
    last = _of_campaign(campaign_id).aggregate(v=Max("queue_ticket"))["v"] or 0
    live = _of_campaign(campaign_id).filter(status__in=LIVE, parked_at__isnull=True).count()
    return last, live


def oldest_waiting(*, campaign_id: int | None) -> int | None:
    """The id of the first order in a campaign's line (parked ones are out of it)."""
    oldest = _oldest_in_line(campaign_id)
    return oldest[0] if oldest else None


def _oldest_in_line(campaign_id: int | None) -> tuple[int, uuid.UUID, datetime] | None:
    """(id, public id, created_at) of the first order in a campaign's line, read through
    order_queue_idx whatever plan the prepared statement has (orders.sql.OLDEST_IN_LINE)."""
    if campaign_id is None:
        rows = prepared_rows(sql.OLDEST_IN_NO_CAMPAIGN_LINE, [])
    else:
        rows = prepared_rows(sql.OLDEST_IN_CAMPAIGN_LINE, [campaign_id])
    return rows[0] if rows else None


def _of_campaign(campaign_id: int | None) -> QuerySet[Order]:
    """Orders of one campaign; None is the line of orders without a campaign."""
    if campaign_id is None:
        return Order.objects.filter(campaign__isnull=True)
    return Order.objects.filter(campaign_id=campaign_id)


# --- For the staff admin's pages -----------------------------------------------------------
# Each read below is shaped for an index, so that it stays fast with millions of orders: see
# shop/migrations/0004_admin_indexes.py for the ones the admin added.


def order_by_id(*, order_id: int) -> Order:
    """Any client's order (staff see them all), with its campaign and client; or NotFound."""
    order = Order.objects.select_related("campaign", "client").filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    return order


def campaign_orders_by_status(*, campaign_id: int) -> dict[str, int]:
    """Every status with its count for one campaign's orders: one GROUP BY, read from
    order_campaign_status_idx alone (index-only), about 0.1 s for a million orders."""
    rows = (
        Order.objects.filter(campaign_id=campaign_id)
        .values("status")
        .annotate(n=Count("*"))
        .order_by()
    )
    return {row["status"]: row["n"] for row in rows}


@dataclass(frozen=True)
class HotProduct:
    product_id: int
    sku: str
    name: str
    stock: int
    stock_total: int
    units_recent: int  # units in the sample of recent orders


def campaign_hot_products(
    *, campaign_id: int, recent: int = 2000, top: int = 8
) -> list[HotProduct]:
    """The products most ordered in the campaign's latest `recent` orders, with their stock.

    A sample of the newest orders, not the whole campaign: what sells now is what runs out
    next, and the newest orders are found in order_ticket_idx (campaign, ticket) without
    touching older ones."""
    newest = (
        Order.objects.filter(campaign_id=campaign_id, queue_ticket__isnull=False)
        .order_by("-queue_ticket")
        .values("id")[:recent]
    )
    units = list(
        OrderLine.objects.filter(order_id__in=Subquery(newest))
        .values("product_id")
        .annotate(units=Sum("quantity"))
        .order_by("-units", "product_id")[:top]
    )
    products = Product.objects.in_bulk([row["product_id"] for row in units])
    return [
        HotProduct(
            product_id=p.pk,
            sku=p.sku,
            name=p.name,
            stock=p.stock,
            stock_total=p.stock_total,
            units_recent=row["units"],
        )
        for row in units
        if (p := products.get(row["product_id"])) is not None
    ]


# Accept-to-paid times are kept as a histogram of milliseconds with buckets each LATENCY_BASE
# times wider than the last: a percentile read from it is within 2.5 % of the exact one, and
# minutes merge by adding counts.
LATENCY_BASE = 1.05
# Order ids and created_at are both taken as an order is inserted, so they grow together up to
# the moments between the two (milliseconds); this much slack makes the id range safe.
ORDER_CLOCK_SLACK = timedelta(seconds=30)


@dataclass
class MinuteFigures:
    """One minute of a campaign: orders accepted, orders paid, and the accept-to-paid times of
    the paid ones (histogram: bucket → count, see LATENCY_BASE)."""

    accepted: int = 0
    paid: int = 0
    latency: dict[int, int] = field(default_factory=dict)


def campaign_minutes(
    *, campaign_id: int, start: datetime, end: datetime
) -> dict[int, MinuteFigures]:
    """The campaign's figures for each minute in [start, end) with any activity, keyed by the
    minute's Unix time / 60. Cost grows with the orders in the window, not in the table:
    accepted orders are read in the id range of the window (the primary key, bisected by
    created_at), paid ones from orderevent_settled_idx."""
    minutes: dict[int, MinuteFigures] = defaultdict(MinuteFigures)
    low = _first_order_id_from(start - ORDER_CLOCK_SLACK)
    high = _first_order_id_from(end + ORDER_CLOCK_SLACK)
    with transaction.atomic(), connection.cursor() as cursor:
        # Compiling these small queries (JIT) would cost more than running them.
        cursor.execute("SET LOCAL jit = off")
        if low is not None:
            cursor.execute(
                sql.MINUTES_ACCEPTED,
                [low, high if high is not None else 2**62, campaign_id, start, end],
            )
            for minute, count in cursor.fetchall():
                minutes[minute].accepted = count
        cursor.execute(
            sql.MINUTES_PAID,
            [LATENCY_BASE, campaign_id, start, end],
        )
        for minute, bucket, count in cursor.fetchall():
            figures = minutes[minute]
            figures.paid += count
            figures.latency[bucket] = figures.latency.get(bucket, 0) + count
    return dict(minutes)


def orders_created_between(*, start: datetime, end: datetime) -> int:
    """About how many orders (of every campaign) were created in [start, end): the width of
    their id range. Two bisections of the primary key: a cost estimate, not a count."""
    low = _first_order_id_from(start)
    if low is None:
        return 0
    high = _first_order_id_from(end)
    if high is None:
        high = (Order.objects.aggregate(v=Max("id"))["v"] or low) + 1
    return max(0, high - low)


def _first_order_id_from(moment: datetime) -> int | None:
    """The first order id created at or after `moment` (None: no order since), by bisecting
    the primary key in one recursive query: about twenty index probes inside PostgreSQL,
    whatever the table's size."""
    return _first_id_from(sql.FIRST_ORDER_ID_FROM, moment)


def _first_id_from(statement: str, moment: datetime) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(statement, {"moment": moment})
        row = cursor.fetchone()
    return row[0] if row else None


@dataclass(frozen=True)
class LineWaiting:
    """A campaign's line: orders waiting (parked ones are out of it) and the oldest."""

    campaign_id: int | None
    waiting: int
    reserved: int  # orders past the line, holding, waiting for their payment
    parked: int
    oldest_id: int | None
    oldest_public_id: str
    oldest_created_at: datetime | None


def lines_waiting(*, campaign_ids: Iterable[int]) -> list[LineWaiting]:
    """Orders waiting and holding per campaign (and for orders without a campaign), with the
    oldest waiting order of each line. Counted per campaign in order_campaign_status_idx
    (index-only): bounded by the backlog ceiling, never by the table."""
    ids = sorted(set(campaign_ids))
    live = [Order.Status.RECEIVED, Order.Status.RESERVED]
    counts: dict[tuple[int | None, str], int] = {}
    rows = (
        Order.objects.filter(Q(campaign_id__in=ids) | Q(campaign__isnull=True), status__in=live)
        .values("campaign_id", "status")
        .annotate(n=Count("*"))
        .order_by()
    )
    for row in rows:
        counts[(row["campaign_id"], row["status"])] = row["n"]
    parked = dict(
        Order.objects.filter(parked_at__isnull=False, status=Order.Status.RECEIVED)
        .values_list("campaign_id")
        .annotate(n=Count("*"))
        .order_by()
    )
    found = []
    for campaign_id in [*ids, None]:
        received = counts.get((campaign_id, Order.Status.RECEIVED), 0)
        reserved = counts.get((campaign_id, Order.Status.RESERVED), 0)
        if campaign_id is None and not (received or reserved):
            continue
        oldest = _oldest_in_line(campaign_id) if received else None
        found.append(
            LineWaiting(
                campaign_id=campaign_id,
                waiting=received - parked.get(campaign_id, 0),
                reserved=reserved,
                parked=parked.get(campaign_id, 0),
                oldest_id=oldest[0] if oldest else None,
                oldest_public_id=str(oldest[1]) if oldest else "",
                oldest_created_at=oldest[2] if oldest else None,
            )
        )
    return found


def orders_settled_since(*, since: datetime) -> int:
    """Orders whose payment was settled (paid or declined) since `since`: the payments
    queue's consume rate (orderevent_settled_idx)."""
    return OrderEvent.objects.filter(
        target__in=[Order.Status.PAID, Order.Status.PAYMENT_FAILED], created_at__gte=since
    ).count()


def callbacks_delivered_since(*, since: datetime) -> int:
    """Callbacks delivered since `since`: the callbacks queue's consume rate
    (callback_delivered_idx)."""
    return CallbackDelivery.objects.filter(delivered_at__gte=since).count()


def callbacks_pending() -> tuple[int, datetime | None]:
    """Deliveries still to make and the oldest one's status change (its creation), in one
    pass over callback_due_idx's rows: after a chatbot's outage the oldest is not the one
    due first, since each waits out its own backoff."""
    pending = CallbackDelivery.objects.filter(state=CallbackDelivery.State.PENDING)
    figures = pending.aggregate(count=Count("id"), oldest=Min("created_at"))
    return figures["count"], figures["oldest"]


def parked_payments() -> QuerySet[Payment]:
    """Payments given up after PAYMENT_MAX_ATTEMPTS, newest first (payment_parked_idx)."""
    return (
        Payment.objects.filter(status=Payment.Status.PARKED).select_related("order").order_by("-id")
    )


def parked_orders() -> QuerySet[Order]:
    """Orders taken out of their line because they failed alone (order_parked_idx)."""
    return (
        Order.objects.filter(parked_at__isnull=False, status=Order.Status.RECEIVED)
        .select_related("campaign")
        .order_by("-id")
    )


def failed_callbacks() -> QuerySet[CallbackDelivery]:
    """Deliveries given up after CALLBACK_RETRY_HOURS of retries (callback_failed_idx)."""
    return (
        CallbackDelivery.objects.filter(state=CallbackDelivery.State.FAILED)
        .select_related("order")
        .order_by("-id")
    )


def latest_callbacks(*, order_ids: Iterable[int]) -> QuerySet[CallbackDelivery]:
    """Each of these orders' newest delivery, the one of its latest status change (one row per
    order that asked for callbacks), by order."""
    return (
        CallbackDelivery.objects.filter(order_id__in=list(order_ids))
        .order_by("order_id", "-id")
        .distinct("order_id")
    )


def latest_callbacks_between(*, since: datetime, until: datetime) -> QuerySet[CallbackDelivery]:
    """The newest delivery of each order whose latest status change happened in [since,
    until) (the delivery's creation is the change's time, X-Event-Time), oldest first. An
    order that changed again after `until` is not here: its newer change has its own delivery.
    Read in the id range of [since, until) (the primary key bisected by created_at, with
    ORDER_CLOCK_SLACK), so its cost grows with the deliveries in the range, not in the table."""
    low = _first_id_from(sql.FIRST_CALLBACK_ID_FROM, since - ORDER_CLOCK_SLACK)
    if low is None:
        return CallbackDelivery.objects.none()
    high = _first_id_from(sql.FIRST_CALLBACK_ID_FROM, until + ORDER_CLOCK_SLACK)
    newest = (
        CallbackDelivery.objects.filter(order_id=OuterRef("order_id")).order_by("-id").values("pk")
    )
    found = CallbackDelivery.objects.filter(
        id__gte=low, created_at__gte=since, created_at__lt=until, pk=Subquery(newest[:1])
    )
    if high is not None:
        found = found.filter(id__lt=high)
    return found.order_by("id")
