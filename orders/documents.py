"""The order as the contract shows it (docs/integrator-guide.md, Placing an order), for API
answers and for callbacks alike.

A plain function, not a DRF serializer: it runs for every callback of every batch, and the
API's OpenAPI component (`orders.api.serializers.OrderOut`) describes exactly this shape.
"""

from __future__ import annotations

from collections.abc import Iterable

from orders.models import Order, OrderLine
from orders.waiting_line import QueueSpot


def order_document(
    order: Order, *, lines: Iterable[OrderLine], queue: QueueSpot | None = None
) -> dict[str, object]:
    waiting = order.status == Order.Status.RECEIVED
    spot = queue if (waiting and queue is not None) else None
    return {
        "id": str(order.public_id),
        "status": order.status,
        "reason": order.reason or None,
        "customer_id": order.customer_id,
        "items": [
            {"sku": line.sku, "quantity": line.quantity, "unit_price": line.unit_price}
            for line in lines
        ],
        "subtotal": order.subtotal,
        "discount": order.discount,
        "payable": order.payable,
        "currency": order.currency,
        "coupon_code": order.coupon_code or None,
        "livemode": order.livemode,
        "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
        "queue": {
            "position": spot.position if spot else 0,
            "estimated_wait_seconds": spot.estimated_wait_seconds if spot else 0,
        },
    }
