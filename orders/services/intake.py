"""Taking an order in: the lean path the chatbot waits on.

One SELECT of the products (and of the coupon, when one is named), one INSERT of the order,
one multi-row INSERT of its lines, a Redis ticket, and after commit a coalesced nudge.
Nothing that can wait is done here: every rule on stock, coupon and budget is the
reservation worker's, under locks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from config import fast
from config.errors import IdempotencyKeyReused, InvalidInput
from coupons import selectors as coupons_selectors
from coupons.errors import BudgetExhausted, CampaignNotActive
from coupons.models import Campaign
from orders import selectors
from orders.errors import LineFull
from orders.models import Order, OrderLine
from orders.services.nudges import nudge_reservations
from shop import selectors as shop_selectors
from shop.errors import OutOfStock, ProductSoldOut
from shop.models import Product


@dataclass(frozen=True)
class ItemIn:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Placed:
    order: Order
    lines: list[OrderLine]
    created: bool
    queue: fast.QueueSpot


def request_fingerprint(
    *, customer_id: str, items: list[ItemIn], coupon_code: str, callback_url: str
) -> str:
    """What makes two requests "the same body" for an Idempotency-Key (API.md)."""
    canonical = json.dumps(
        [customer_id, [[i.sku, i.quantity] for i in items], coupon_code, callback_url],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def order_place(
    *,
    client_id: int,
    customer_id: str,
    items: list[ItemIn],
    coupon_code: str = "",
    callback_url: str = "",
    idempotency_key: str,
) -> Placed:
    """Store a `received` order and queue it. A replay of the key returns the first order
    (created=False); the key with another body raises IdempotencyKeyReused. Unknown SKUs or
    a SKU listed twice raise InvalidInput. Hopeless orders are refused without storing
    anything: ProductSoldOut, OutOfStock, CampaignNotActive (paused, ended, not started),
    BudgetExhausted; and LineFull (429) when the campaign's line is at its backlog ceiling.
    After commit: nudges the campaign's reservations.

    A coupon that is unknown, or not this customer's, is kept as typed and the order is
    rejected `coupon_invalid` by the worker, like every other reason, so that the chatbot
    learns all outcomes the same way.
    """
    fingerprint = request_fingerprint(
        customer_id=customer_id, items=items, coupon_code=coupon_code, callback_url=callback_url
    )
    existing = _replay(client_id, idempotency_key, fingerprint)
    if existing is not None:
        return existing

    skus = [i.sku for i in items]
    if len(set(skus)) != len(skus):
        raise InvalidInput(
            "Each SKU may appear once.", fields={"items": ["Each SKU may appear once."]}
        )
    products = shop_selectors.products_by_sku(skus)
    unknown = [s for s in skus if s not in products]
    if unknown:
        raise InvalidInput(
            f"Unknown SKU: {', '.join(unknown)}.",
            fields={"items": [f"Unknown SKU {s!r}." for s in unknown]},
        )
    _refuse_if_out_of_stock(items, products)
    subtotal = sum(products[i.sku].price * i.quantity for i in items)

    campaign: Campaign | None = None
    coupon_id = None
    discount = 0
    if coupon_code:
        coupon = coupons_selectors.coupon_by_code(code=coupon_code)
        if (
            coupon is not None
            and coupon.client_id == client_id
            and coupon.customer_id == customer_id
        ):
            campaign, coupon_id = coupon.campaign, coupon.pk
            discount = min(subtotal, coupon.max_discount)
            _refuse_if_campaign_cannot_serve(campaign, discount)

    campaign_id = campaign.pk if campaign else None
    ticket = _ticket(campaign_id, ceiling=_ceiling(campaign))
    order = Order(
        client_id=client_id,
        customer_id=customer_id,
        campaign_id=campaign_id,
        coupon_id=coupon_id,
        coupon_code=coupon_code,
        subtotal=subtotal,
        discount=discount,
        payable=subtotal - discount,
        callback_url=callback_url,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        queue_ticket=ticket,
    )
    try:
        with transaction.atomic():
            order.save(force_insert=True)
            lines = OrderLine.objects.bulk_create(
                [
                    OrderLine(
                        order=order,
                        product_id=products[i.sku].pk,
                        sku=i.sku,
                        quantity=i.quantity,
                        unit_price=products[i.sku].price,
                    )
                    for i in items
                ]
            )
            transaction.on_commit(partial(nudge_reservations, campaign_id))
    except IntegrityError:
        # A concurrent request with the same key won the insert.
        replay = _replay(client_id, idempotency_key, fingerprint)
        if replay is None:
            raise
        return replay
    return Placed(order=order, lines=lines, created=True, queue=selectors.order_queue_spot(order))


# Hopeless orders are answered at once from rows intake reads anyway: nothing is written,
# nothing queued. The worker checks everything again under locks; these only save the wait.


def _refuse_if_out_of_stock(items: list[ItemIn], products: dict[str, Product]) -> None:
    for item in items:
        left = products[item.sku].stock
        if left <= 0:
            raise ProductSoldOut(f"{item.sku} is sold out.")
        if left < item.quantity:
            raise OutOfStock(f"Only {left} of {item.sku} left.")


def _refuse_if_campaign_cannot_serve(campaign: Campaign, discount: int) -> None:
    if not campaign.is_open_at(timezone.now()):
        raise CampaignNotActive()  # paused, ended or not started
    if campaign.budget_remaining < discount:
        raise BudgetExhausted()


def _ceiling(campaign: Campaign | None) -> int:
    if campaign is not None and campaign.backlog_ceiling is not None:
        return campaign.backlog_ceiling
    return settings.BACKLOG_CEILING


def _ticket(campaign_id: int | None, *, ceiling: int) -> int | None:
    """A place in the campaign's line. Raises LineFull at the backlog ceiling."""
    ticket = fast.ticket_take(campaign_id, ceiling=ceiling)
    if ticket is None:
        last, first = selectors.queue_tickets(campaign_id=campaign_id)
        fast.queue_rebuild(campaign_id, last_ticket=last, first_waiting=first)
        ticket = fast.ticket_take(campaign_id, ceiling=ceiling)
    if ticket == fast.LINE_FULL:
        wait = fast.estimate(max(1, ceiling // 10), fast.drain_rate(campaign_id))
        raise LineFull(retry_after=max(1, wait))
    return ticket


def _replay(client_id: int, idempotency_key: str, fingerprint: str) -> Placed | None:
    order = Order.objects.filter(client_id=client_id, idempotency_key=idempotency_key).first()
    if order is None:
        return None
    if order.request_hash != fingerprint:
        raise IdempotencyKeyReused()
    lines = list(order.lines.order_by("id"))
    return Placed(order=order, lines=lines, created=False, queue=selectors.order_queue_spot(order))
