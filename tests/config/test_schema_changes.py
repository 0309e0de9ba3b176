"""A migration that adds columns while the stack serves (docs/operations.md, "Changing the
schema"): `migrate` runs before the new code is rolled out, so the running gunicorn and Celery
workers meet tables with columns they do not know. They must keep serving: no 5xx, no order
parked, every accepted order final, stock, coupons and budget adding up."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.db import connection
from django.db.models import QuerySet, Sum

from coupons.models import Campaign, Coupon, CouponSlice
from orders.models import Order, OrderLine
from shop import services as shop_services
from shop.models import Product
from tests import stack
from tests.factories.coupons import CampaignFactory
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.pipeline import all_terminal, wait_for

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

# Every table the request path and the workers read and write on each order.
HOT_TABLES = (
    "orders_order",
    "orders_orderline",
    "orders_payment",
    "orders_reservation",
    "orders_callbackdelivery",
    "coupons_coupon",
    "coupons_campaign",
    "coupons_couponslice",
    "shop_product",
)
NEW_COLUMN = "added_mid_burst"
SHOPPERS = 24


@pytest.fixture
def web(worker_env: dict[str, str], sandbox: httpx.Client, log_dir: Path) -> Iterator[str]:
    """gunicorn with two workers, serving the burst rather than shedding it (shedding has its
    own tests, tests/infra/test_server.py)."""
    env = {
        **worker_env,
        "WEB_QUEUE_TIMEOUT_MS": "5000",
        "WEB_QUEUE_TIMEOUT_BUSY_MS": "5000",
        "WEB_QUEUE_TIMEOUT_SHEDDING_MS": "5000",
    }
    url, process = stack.start_web(log_dir / "schema-gunicorn.log", env=env, workers=2)
    yield url
    stack.stop(process)


@pytest.fixture
def columns_added() -> Iterator[Callable[[], None]]:
    """Adds a nullable column to every hot table, as `migrate` would; dropped after the test
    (the test database is kept between runs)."""

    def add() -> None:
        with connection.cursor() as cursor:
            for table in HOT_TABLES:
                cursor.execute(f"ALTER TABLE {table} ADD COLUMN {NEW_COLUMN} integer NULL")

    yield add
    with connection.cursor() as cursor:
        for table in HOT_TABLES:
            cursor.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {NEW_COLUMN}")


def test_serving_goes_on_while_a_migration_adds_columns_to_the_hot_tables(
    web: str,
    start_worker: Callable[..., object],
    gateway: httpx.Client,
    columns_added: Callable[[], None],
) -> None:
    # given: a campaign and a product on sale, and a worker on every queue
    start_worker()
    client = ApiClientFactory()
    key = shop_services.api_key_issue(client_id=client.pk).raw
    campaign = CampaignFactory(coupons_total=100, budget_total=10_000_000)
    tea = ProductFactory(price=3000, stock=100)  # more than a coupon covers: a charge each
    http = httpx.Client(base_url=web, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    answers: list[int] = []

    def place(i: int) -> tuple[str, dict, str]:
        """A shopper claims a coupon and orders with it; (order id, body, key)."""
        coupon = http.post(
            f"/api/v1/campaigns/{campaign.slug}/claims/",
            json={"customer_id": f"c-{i}"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        answers.append(coupon.status_code)
        assert coupon.status_code == 201, coupon.text
        body = {
            "customer_id": f"c-{i}",
            "items": [{"sku": tea.sku, "quantity": 1}],
            "coupon_code": coupon.json()["code"],
        }
        order_key = uuid.uuid4().hex
        response = http.post("/api/v1/orders/", json=body, headers={"Idempotency-Key": order_key})
        answers.append(response.status_code)
        assert response.status_code == 202, response.text
        return response.json()["id"], body, order_key

    def replay(placed: tuple[str, dict, str]) -> None:
        """The shopper's chatbot retries the same order (read back by its key) and polls it."""
        public_id, body, order_key = placed
        again = http.post("/api/v1/orders/", json=body, headers={"Idempotency-Key": order_key})
        answers.append(again.status_code)
        assert again.status_code < 300, again.text
        assert again.json()["id"] == public_id
        polled = http.get(f"/api/v1/orders/{public_id}/")
        answers.append(polled.status_code)
        assert polled.status_code == 200, polled.text

    # when: the first half of the burst is served through to final, so every process has run
    # (and prepared) its statements; then the columns come, and the second half and the
    # first half's retries meet them
    with ThreadPoolExecutor(4) as pool:
        first = list(pool.map(place, range(SHOPPERS // 2)))
        first_ids = Order.objects.filter(public_id__in=[p for p, _, _ in first])
        wait_for(all_terminal(first_ids.values_list("pk", flat=True)), what="the first half")
        columns_added()
        second = list(pool.map(place, range(SHOPPERS // 2, SHOPPERS)))
        list(pool.map(replay, first + second))
    ids = list(
        Order.objects.filter(public_id__in=[p for p, _, _ in first + second]).values_list(
            "pk", flat=True
        )
    )
    wait_for(all_terminal(ids), what="the burst", timeout=90)

    # then: nothing failed, nothing parked, every order paid, and the books add up
    assert not [code for code in answers if code >= 500]
    orders = Order.objects.filter(pk__in=ids)
    assert set(orders.values_list("status", flat=True)) == {Order.Status.PAID}
    assert not orders.filter(parked_at__isnull=False).exists()
    assert_books_add_up(orders, tea, campaign)


def assert_books_add_up(orders: QuerySet[Order], product: Product, campaign: Campaign) -> None:
    """Stock, coupons and budget, for a burst of paid orders of one unit each with a coupon."""
    # stock: what was sold left the shelf, once
    product.refresh_from_db()
    sold = OrderLine.objects.filter(order__in=orders).aggregate(n=Sum("quantity"))["n"]
    assert sold == SHOPPERS
    assert product.stock == product.stock_total - sold
    # coupons: one each, redeemed by its order; the slices counted every one issued
    coupons = Coupon.objects.filter(campaign=campaign)
    assert coupons.count() == SHOPPERS
    assert set(coupons.values_list("status", flat=True)) == {Coupon.Status.REDEEMED}
    used = set(orders.values_list("coupon_id", flat=True))
    assert used == set(coupons.values_list("pk", flat=True))
    issued = CouponSlice.objects.filter(campaign=campaign).aggregate(n=Sum("issued"))["n"]
    assert issued == SHOPPERS
    # budget: nothing held any more, the paid discounts spent
    campaign.refresh_from_db()
    assert campaign.budget_held == 0
    assert campaign.budget_spent == orders.aggregate(n=Sum("discount"))["n"] > 0
