"""What each pipeline stage costs per order, measured in one process against the real
PostgreSQL, Redis and the sandbox gateway (latency 0). Not the campaign benchmark (that is
`bench/` proper, issue 7): a quick per-stage figure for README.

Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/campaign_bench \
       .venv/bin/python bench/stage_costs.py [orders]
It creates the database if missing, migrates it, and starts its own sandbox gateway.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/campaign_bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
os.environ["PAYMENT_GATEWAY_URL"] = "http://127.0.0.1:18799"


def timed(label: str, count: int, fn) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{label:<34} {count:>6} orders  {wall / count * 1000:7.3f} ms wall/order  "
        f"{cpu / count * 1000:7.3f} ms CPU/order (this process)  {count / wall:8.0f} orders/s"
    )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    from devtools.bootstrap import ensure_database

    ensure_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from config import fast
    from coupons import services as coupons_services
    from orders import services
    from shop import services as shop_services
    from shop.models import Product, Store

    fast.client().flushdb()
    gateway = subprocess.Popen(
        [sys.executable, "-m", "orders.gateway.sandbox", "--port", "18799", "--latency-ms", "0"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)
    try:
        run = uuid.uuid4().hex[:8]
        store = Store.objects.create(slug=f"s-{run}", name="bench")
        product = Product.objects.create(
            sku=f"B-{run}", name="bench", store=store, price=3000, stock=count, stock_total=count
        )
        now = timezone.now()
        campaign = coupons_services.campaign_seed(
            slug=f"b-{run}",
            name="bench",
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(days=1),
            coupon_valid_until=now + timedelta(days=1),
            max_discount=2500,
            coupons_total=count,
            budget_total=2500 * count,
        )
        client = shop_services.api_client_create(name=f"bench-{run}")
        coupons = []
        timed(
            "claim (coupon_claim)",
            count,
            lambda: coupons.extend(
                coupons_services.coupon_claim(
                    client_id=client.pk,
                    slug=campaign.slug,
                    customer_id=f"c-{i}",
                    idempotency_key=f"k-{i}",
                ).coupon
                for i in range(count)
            ),
        )
        timed(
            "intake (order_place)",
            count,
            lambda: [
                services.order_place(
                    client_id=client.pk,
                    customer_id=c.customer_id,
                    items=[services.ItemIn(sku=product.sku, quantity=1)],
                    coupon_code=c.code,
                    idempotency_key=f"o-{c.pk}",
                )
                for c in coupons
            ],
        )

        def reserve() -> None:
            while services.reservations_take_batch(campaign_id=campaign.pk, limit=500).seen:
                pass

        timed("reserve (batches of 500)", count, reserve)
        from concurrent.futures import ThreadPoolExecutor

        from orders.services.settlement import gateway as client_for
        from orders.services.settlement import payment_attempt

        def settle() -> None:
            with ThreadPoolExecutor(32) as pool:
                while (claimed := services.payments_claim_batch(limit=200)).jobs:
                    outcomes = list(
                        pool.map(lambda j: payment_attempt(client_for(), j), claimed.jobs)
                    )
                    services.payments_record(list(zip(claimed.jobs, outcomes, strict=True)))

        timed("settle (batches of 200, 32 calls)", count, settle)
        paid = campaign.orders.filter(status="paid").count()
        print(f"paid: {paid} of {count}")
    finally:
        gateway.terminate()


if __name__ == "__main__":
    main()
