"""Test mode through a real Celery worker (docs/integrator-guide.md, Test mode): a test order
is charged at the test gateway only, moves no live stock, coupon or budget, is left out of
the live figures, and its callbacks say `livemode: false`; a live order beside it goes on as
before, at the live gateway."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from coupons.models import Campaign
from orders.models import Order
from shop import services as shop_services
from shop.models import Product
from tests.conftest import api_for
from tests.factories.coupons import CampaignFactory
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.pipeline import all_terminal, callback_receiver, ledger, wait_for

pytestmark = [
    pytest.mark.pipeline,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker"),
]


def _post(api: APIClient, path: str, body: dict[str, object]) -> dict:
    response = api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)
    assert response.status_code in (201, 202), response.content
    return response.json()


def test_a_test_order_is_charged_at_the_test_gateway_only_and_touches_no_live_data(
    gateway, test_gateway
) -> None:
    # given: one client with a live and a test key, a live and a test campaign and product
    client = ApiClientFactory()
    live = api_for(client)
    test = APIClient()
    test_key = shop_services.api_key_issue(client_id=client.pk, livemode=False).raw
    test.credentials(HTTP_AUTHORIZATION=f"Bearer {test_key}")
    live_campaign = CampaignFactory(budget_total=100_000, coupons_total=10)
    test_campaign = CampaignFactory(budget_total=100_000, coupons_total=10, livemode=False)
    live_tea = ProductFactory(price=1800, stock=10)
    test_tea = ProductFactory(price=1800, stock=10, livemode=False)
    live_before = live.get(f"/api/v1/campaigns/{live_campaign.slug}/").json()
    # when: a test order with a test coupon settles through the worker
    code = _post(test, f"/api/v1/campaigns/{test_campaign.slug}/claims/", {"customer_id": "c-1"})
    with callback_receiver() as receiver:
        placed = _post(
            test,
            "/api/v1/orders/",
            {
                "customer_id": "c-1",
                "items": [{"sku": test_tea.sku, "quantity": 2}],
                "coupon_code": code["code"],
                "callback_url": receiver.url,
            },
        )
        pk = Order.objects.get(public_id=placed["id"]).pk
        wait_for(all_terminal([pk]), what="the test order")
        wait_for(lambda: receiver.with_status("paid"), what="its callback")
    # then: paid, at the test gateway, and nothing at the live one
    done = test.get(f"/api/v1/orders/{placed['id']}/").json()
    assert (done["status"], done["livemode"], done["payable"]) == ("paid", False, 1100)
    assert [(c["reference"], c["status"]) for c in ledger(test_gateway)["charges"]] == [
        (placed["id"], "succeeded")
    ]
    assert ledger(gateway)["charges"] == []
    # live stock, coupons and budget are untouched; the test ones moved
    assert Product.objects.get(pk=live_tea.pk).stock == 10
    assert Product.objects.get(pk=test_tea.pk).stock == 8
    live_after = live.get(f"/api/v1/campaigns/{live_campaign.slug}/").json()
    assert live_after["budget_remaining"] == live_before["budget_remaining"] == 100_000
    assert live_after["coupons_remaining"] == live_before["coupons_remaining"] == 10
    assert Campaign.objects.get(pk=test_campaign.pk).budget_spent == 2500
    # every callback of the test order says it is one
    assert receiver.deliveries
    assert {(b["id"], b["livemode"]) for b in receiver.bodies()} == {(placed["id"], False)}
    # and a live order beside it is charged at the live gateway only
    live_order = _post(
        live,
        "/api/v1/orders/",
        {"customer_id": "c-2", "items": [{"sku": live_tea.sku, "quantity": 1}]},
    )
    wait_for(all_terminal([Order.objects.get(public_id=live_order["id"]).pk]), what="live")
    assert [c["reference"] for c in ledger(gateway)["charges"]] == [live_order["id"]]
    assert [c["reference"] for c in ledger(test_gateway)["charges"]] == [placed["id"]]
