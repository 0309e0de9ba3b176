"""The move functions: one per lifecycle, and the only writers of OrderEvent rows.

Each checks its table (orders.models) under the caller's row locks, writes the rows it moves
and their events, and, where the client asked for callbacks and its order's status changed,
the callback row, in the caller's transaction:

- `orders_move` (`order_move` for one): an order's status, ORDER_ALLOWED;
- `orders_park`: an order out of its line and back, PARKING_ALLOWED;
- `payments_move`: payments, created or moved, PAYMENT_ALLOWED;
- `refund_move`: a paid order's refund, REFUND_ALLOWED (its success moves the order).

A batch is one statement per kind of row, whatever its size: the workers call these with
every order of their batch, never once per order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction

from infra.errors import InvalidTransition
from infra.sql import prepared_count, prepared_rows, rows_insert
from orders import metrics, selectors, sql, waiting_line
from orders.documents import order_document
from orders.models import (
    NEW,
    ORDER_ALLOWED,
    PARKED,
    PARKING_ALLOWED,
    PAYMENT_ALLOWED,
    REFUND_ALLOWED,
    TERMINAL,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    Refund,
    parking_state,
)
from orders.services.nudges import nudge_callbacks

log = logging.getLogger(__name__)


def orders_move(
    orders: Sequence[Order],
    to: str,
    *,
    actor: str,
    now: datetime,
    reason: str = "",
    lines: Mapping[int, list[OrderLine]] | None = None,
    data: Mapping[int, dict[str, object]] | None = None,
) -> None:
    """Move every order to `to`. The caller holds `select_for_update` on all of them inside an
    atomic block. One statement for all: the UPDATE, an event row per order, and the
    callbacks (orders.sql.ORDERS_MOVE_WRITE). `lines` (order id → lines) is
    needed only for orders with a callback_url, to render the callback's body."""
    if not orders:
        return
    for order in orders:
        if to not in ORDER_ALLOWED[order.status]:
            raise InvalidTransition(entity="order", current=order.status, target=to)
    metrics.transitions_record(orders, to, now, reason)
    # One line per batch, naming every order with the request that placed it: grep a request
    # id and find the batch that moved its order.
    if log.isEnabledFor(logging.INFO):
        log.info(
            "%d orders to %s",
            len(orders),
            to,
            extra={
                "actor": actor,
                "order_status": to,
                "reason": reason,
                "orders": [str(o.public_id) for o in orders],
                "request_ids": [o.request_id for o in orders],
            },
        )
    ids = [o.pk for o in orders]
    sources = [str(o.status) for o in orders]
    event_data = [
        _json({**({"reason": reason} if reason else {}), **((data or {}).get(o.pk, {}))})
        for o in orders
    ]
    if to in TERMINAL:
        _line_leave(orders)
    for order in orders:
        order.status, order.reason, order.updated_at = to, reason, now
    wanted = _callbacks_wanted(orders, lines or {})
    # The UPDATE, the events and the callbacks in one statement (orders.sql.ORDERS_MOVE_WRITE).
    # A passing status's callback waits a moment for its successor, which then supersedes
    # it; a terminal one is due at once (orders.services.callbacks coalesces them).
    passing = timedelta(seconds=settings.CALLBACK_PASSING_DELAY_SECONDS)
    due = now if to in TERMINAL else now + passing
    prepared_count(
        sql.ORDERS_MOVE_WRITE,
        [
            str(to),
            str(reason),
            now,
            ids,
            str(to),
            actor,
            now,
            ids,
            sources,
            event_data,
            str(to),
            due,
            now,
            now,
            [o.pk for o, _ in wanted],
            [o.callback_url for o, _ in wanted],
            [_json(document) for _, document in wanted],
        ],
    )
    if wanted:
        transaction.on_commit(nudge_callbacks)


def _line_leave(orders: Sequence[Order]) -> None:
    """Orders made final leave their campaign's line once committed: everyone behind moves
    up, and the drain rate, which promises waits until final, counts them (orders.waiting_line).
    Parked orders left it when parked; a paid order refunded had left it already."""
    leaving: dict[int | None, int] = {}
    for order in orders:
        if order.status in selectors.LIVE and order.parked_at is None:
            leaving[order.campaign_id] = leaving.get(order.campaign_id, 0) + 1
    for campaign_id, count in leaving.items():
        transaction.on_commit(partial(waiting_line.tickets_done, campaign_id, count))


def order_move(
    order: Order, to: str, *, actor: str, now: datetime, reason: str = "", **data: object
) -> None:
    """`orders_move` for one order (its lines are read only if a callback needs them)."""
    lines = {order.pk: list(order.lines.order_by("id"))} if order.callback_url else {}
    orders_move(
        [order], to, actor=actor, now=now, reason=reason, lines=lines, data={order.pk: data}
    )


def _callbacks_wanted(
    orders: Sequence[Order], lines: Mapping[int, list[OrderLine]]
) -> list[tuple[Order, dict[str, object]]]:
    """Each moved order that asked for callbacks, with the body of the callback its move owes
    (its document as it stands now): written in the same statement as the move, so a status
    change is never announced unless it happened, nor lost if it did."""
    wanted = [o for o in orders if o.callback_url]
    if not wanted:
        return []
    missing = [o.pk for o in wanted if o.pk not in lines]
    if missing:  # one query for the batch, not one per order
        lines = {**lines, **selectors.lines_by_order(missing)}
    return [(o, order_document(o, lines=lines.get(o.pk, []))) for o in wanted]


_JSON = OrderEvent._meta.get_field("data")


def _json(value: object) -> object:
    """A JSON column's value as psycopg sends it (the ORM's own adaptation: its encoder)."""
    return _JSON.get_db_prep_save(value, connection)


def orders_park(
    orders: Sequence[Order], to: str, *, actor: str, now: datetime, reason: str = ""
) -> None:
    """Take received orders out of their line (`to` PARKED, with the reason) or put parked
    ones back at its head (`to` RECEIVED: they keep their place by id). The caller holds
    `select_for_update` on all of them. One event row per order, one UPDATE for all. The
    status does not change, so no callback is due."""
    if not orders:
        return
    for order in orders:
        if to not in PARKING_ALLOWED[parking_state(order)]:
            raise InvalidTransition(entity="order", current=parking_state(order), target=to)
    parked = to == PARKED
    _events_write(
        (o.pk, parking_state(o), to, actor, {"reason": reason} if parked else {"replay": True}, now)
        for o in orders
    )
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(
        parked_at=now if parked else None, park_reason=reason if parked else "", updated_at=now
    )
    for order in orders:
        order.parked_at, order.park_reason = (now if parked else None), (reason if parked else "")


class PaymentMove(NamedTuple):
    """One step of one payment; a payment may take several in one batch (pending → unknown →
    pending, when its lease ran out). A payment without a primary key is created by its
    first step (from NEW)."""

    payment: Payment
    to: str
    data: Mapping[str, object] = {}


def payments_move(moves: Sequence[PaymentMove], *, actor: str, now: datetime) -> None:
    """Move payments along PAYMENT_ALLOWED, each step checked against the status the previous
    one left. The caller holds the locks of their orders, read the payments under them, and
    has set any other changed fields on the objects (charge_id, attempts, last_error,
    next_attempt_at: all of them are written). One statement whatever the batch's size
    (orders.sql.PAYMENTS_MOVE_WRITE): the new payments inserted (their primary keys set on
    the objects), the others updated, every step's event. The order's own move (paid,
    payment_failed) is the caller's, through `orders_move`."""
    if not moves:
        return
    rows = {id(m.payment): m.payment for m in moves}  # each payment once, in order
    new = {key for key, p in rows.items() if p.pk is None}
    first_steps = set(new)
    events: list[tuple[int, str, str, object]] = []
    for payment, to, data in moves:
        source = NEW if id(payment) in first_steps else payment.status
        first_steps.discard(id(payment))
        if to not in PAYMENT_ALLOWED[source]:
            raise InvalidTransition(entity="payment", current=source or "new", target=to)
        kept = {k: v for k, v in data.items() if v not in (None, "")}
        events.append((payment.order_id, f"payment:{source}", f"payment:{to}", _json(kept)))
        payment.status = to
        payment.updated_at = now
    created = [p for key, p in rows.items() if key in new]
    moved = [p for key, p in rows.items() if key not in new]
    ids = dict(
        prepared_rows(
            sql.PAYMENTS_MOVE_WRITE,
            [
                now,
                *_columns(
                    created,
                    "order_id",
                    "idempotency_key",
                    "amount",
                    "currency",
                    "status",
                    "charge_id",
                    "attempts",
                    "last_error",
                    "next_attempt_at",
                    "created_at",
                ),
                now,
                *_columns(moved, "pk", "status", "charge_id", "attempts", "last_error"),
                [p.next_attempt_at for p in moved],
                actor,
                now,
                *([event[i] for event in events] for i in range(4)),
            ],
        )
    )
    for payment in created:
        payment.pk = ids[payment.order_id]


def _columns(objects: Sequence[Payment], *names: str) -> list[list[object]]:
    """One array per attribute: what an unnest of the rows takes. Text choices as plain str."""
    return [
        [str(v) if isinstance(v, str) else v for v in (getattr(o, n) for o in objects)]
        for n in names
    ]


# The columns written for each event row, in the order the tuples give them.
EVENT_FIELDS = ("order", "source", "target", "actor", "data", "created_at")


def _events_write(events: Iterable[tuple[object, ...]]) -> None:
    """One OrderEvent row per (order id, source, target, actor, data, created_at), in one
    statement (infra.sql.rows_insert)."""
    rows_insert(OrderEvent, EVENT_FIELDS, list(events))


def refund_move(
    order: Order, refund: Refund, to: str, /, *, actor: str, now: datetime, **data: object
) -> Refund:
    """Move the order's refund along REFUND_ALLOWED (a refund without a primary key is
    created). The caller holds the order's lock and has set `refund_id`/`last_error` where
    they changed. Succeeded moves a paid order to refunded (its event, with the refund's id
    and amount, records both, and its callback goes out); every other step, and the refund of
    a charge whose order had already ended unpaid (it keeps its status), is a `refund:`
    event."""
    source = refund.status if refund.pk else NEW
    if to not in REFUND_ALLOWED[source]:
        raise InvalidTransition(entity="refund", current=source or "new", target=to)
    refund.status, refund.updated_at = to, now
    if refund.pk is None:
        refund.save(force_insert=True)
    else:
        refund.save(update_fields=["status", "refund_id", "last_error", "updated_at"])
    if to == Refund.Status.SUCCEEDED and order.status == Order.Status.PAID:
        order_move(order, Order.Status.REFUNDED, actor=actor, now=now, **data)
    else:
        OrderEvent.objects.create(
            order=order,
            source=f"refund:{source}",
            target=f"refund:{to}",
            actor=actor,
            data=data,
            created_at=now,
        )
    return refund
