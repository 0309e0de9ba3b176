"""The one way an order's status changes: checked against ORDER_ALLOWED under the caller's row
lock, recorded as an OrderEvent, and announced by callback when the client asked for one."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from django.db import transaction

from config.errors import InvalidTransition
from orders import metrics, selectors
from orders.documents import order_document
from orders.models import ORDER_ALLOWED, CallbackDelivery, Order, OrderEvent, OrderLine
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
    atomic block. One event row per order, one UPDATE for all. `lines` (order id → lines) is
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
    OrderEvent.objects.bulk_create(
        OrderEvent(
            order_id=o.pk,
            source=o.status,
            target=to,
            actor=actor,
            data={**({"reason": reason} if reason else {}), **((data or {}).get(o.pk, {}))},
            created_at=now,
        )
        for o in orders
    )
    Order.objects.filter(pk__in=[o.pk for o in orders]).update(
        status=to, reason=reason, updated_at=now
    )
    for order in orders:
        order.status, order.reason, order.updated_at = to, reason, now
    _callbacks_record(orders, lines or {}, now)


def order_move(
    order: Order, to: str, *, actor: str, now: datetime, reason: str = "", **data: object
) -> None:
    """`orders_move` for one order (its lines are read only if a callback needs them)."""
    lines = {order.pk: list(order.lines.order_by("id"))} if order.callback_url else {}
    orders_move(
        [order], to, actor=actor, now=now, reason=reason, lines=lines, data={order.pk: data}
    )


def _callbacks_record(
    orders: Sequence[Order], lines: Mapping[int, list[OrderLine]], now: datetime
) -> None:
    """A delivery row per order that asked for callbacks, written in the same transaction as
    the move, so a status change is never announced unless it happened, nor lost if it did."""
    wanted = [o for o in orders if o.callback_url]
    if not wanted:
        return
    missing = [o.pk for o in wanted if o.pk not in lines]
    if missing:  # one query for the batch, not one per order
        lines = {**lines, **selectors.lines_by_order(missing)}
    CallbackDelivery.objects.bulk_create(
        CallbackDelivery(
            order_id=o.pk,
            url=o.callback_url,
            order_status=o.status,
            payload=order_document(o, lines=lines.get(o.pk, [])),
            next_attempt_at=now,
        )
        for o in wanted
    )
    transaction.on_commit(nudge_callbacks)
