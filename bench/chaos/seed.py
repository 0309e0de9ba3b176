"""What the chaos suite sells: run in a process of its own with the chaos stack's environment
(`python -m bench.chaos.seed SPEC_JSON`), so the orchestrator never sets Django up and never
shares a connection with the stack it breaks.

SPEC_JSON: {"scenarios": {"<name>": <shoppers>, ...}}. For each scenario: one campaign and
two products, sized so that every limit binds a little (more shoppers than coupons, more
units wanted than exist, less budget than the discounts asked for): the invariants are only
tested where they could be broken. Prints {"api_key": ..., "campaigns": {name: {...}}}.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

MAX_DISCOUNT = 2500  # fen
PRICES = (1800, 3200)  # one SKU below the discount (nothing left to pay), one above it


def sizes(shoppers: int) -> dict[str, int]:
    """Coupons for 90 % of shoppers, stock for about 80 % of the units wanted, budget for
    70 % of the coupons: each limit turns some orders away."""
    return {
        "coupons_total": max(1, shoppers * 9 // 10),
        "stock_per_product": max(1, shoppers * 45 // 100),
        "budget_total": MAX_DISCOUNT * max(1, shoppers * 7 // 10),
    }


def seed(spec: dict[str, dict[str, int]]) -> dict[str, object]:
    import django

    django.setup()
    from django.db import transaction
    from django.utils import timezone

    from coupons import services as coupons_services
    from shop import services as shop_services
    from shop.models import Product, Store

    now = timezone.now()
    campaigns: dict[str, object] = {}
    with transaction.atomic():
        client = shop_services.api_client_create(name="chaos-chatbot")
        key = shop_services.api_key_issue(client_id=client.pk, label="chaos suite").raw
        store = Store.objects.create(slug="chaos-store", name="Chaos store")
        for name, shoppers in spec["scenarios"].items():
            size = sizes(shoppers)
            skus = []
            for letter, price in zip("AB", PRICES, strict=True):
                sku = f"CHAOS-{name.upper()}-{letter}"
                stock = size["stock_per_product"]
                Product.objects.create(
                    sku=sku, name=sku, store=store, price=price, stock=stock, stock_total=stock
                )
                skus.append(sku)
            slug = f"chaos-{name}".replace("_", "-")
            campaign = coupons_services.campaign_seed(
                slug=slug,
                name=f"Chaos: {name}",
                starts_at=now - timedelta(minutes=1),
                ends_at=now + timedelta(days=1),
                coupon_valid_until=now + timedelta(days=1),
                max_discount=MAX_DISCOUNT,
                per_customer_limit=1,
                coupons_total=size["coupons_total"],
                budget_total=size["budget_total"],
            )
            campaigns[name] = {"slug": slug, "campaign_id": campaign.pk, "skus": skus, **size}
    return {"api_key": key, "client_id": client.pk, "campaigns": campaigns}


if __name__ == "__main__":
    json.dump(seed(json.loads(sys.argv[1])), sys.stdout)
