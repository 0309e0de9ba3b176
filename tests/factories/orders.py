"""Orders are made the way production makes them: through the services, so a test never
builds a state the pipeline could not reach."""

from __future__ import annotations

import uuid

from coupons import services as coupons_services
from coupons.models import Campaign, Coupon
from orders import services
from orders.models import Order
from shop.models import ApiClient, Product


def claim(
    client: ApiClient, campaign: Campaign, customer_id: str, *, livemode: bool = True
) -> Coupon:
    return coupons_services.coupon_claim(
        client_id=client.pk,
        slug=campaign.slug,
        customer_id=customer_id,
        idempotency_key=uuid.uuid4().hex,
        livemode=livemode,
    ).coupon


def place(
    client: ApiClient,
    customer_id: str,
    items: list[tuple[Product, int]],
    *,
    coupon: Coupon | None = None,
    coupon_code: str = "",
    callback_url: str = "",
    key: str | None = None,
    livemode: bool = True,
) -> Order:
    return services.order_place(
        client_id=client.pk,
        customer_id=customer_id,
        items=[services.ItemIn(sku=p.sku, quantity=q) for p, q in items],
        coupon_code=coupon.code if coupon else coupon_code,
        callback_url=callback_url,
        idempotency_key=key or uuid.uuid4().hex,
        livemode=livemode,
    ).order
