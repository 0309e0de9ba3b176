"""Test mode (docs/integrator-guide.md, Test mode): a `cop_test_` key reaches only test
products, campaigns and orders, and a live key only live ones; either way the other mode's
data answers as if it did not exist."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from orders import metrics
from orders.models import Order
from orders.services import settlement
from shop import services as shop_services
from shop.models import ApiClient, ApiKey, Product, RateLimit
from tests.conftest import api_for
from tests.factories.coupons import CampaignFactory
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.pipeline import ledger

pytestmark = pytest.mark.django_db


def api_in_test_mode(client: ApiClient) -> APIClient:
    raw = shop_services.api_key_issue(client_id=client.pk, livemode=False).raw
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def claim(api: APIClient, slug: str, customer_id: str = "c-1"):
    return api.post(
        f"/api/v1/campaigns/{slug}/claims/",
        {"customer_id": customer_id},
        format="json",
        HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
    )


def place(api: APIClient, sku: str, customer_id: str = "c-1", **extra: object):
    body = {"customer_id": customer_id, "items": [{"sku": sku, "quantity": 1}], **extra}
    return api.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)


def test_a_test_key_reads_cop_test_and_a_live_key_never_does() -> None:
    # given
    client = ApiClientFactory()
    # when
    test_key = shop_services.api_key_issue(client_id=client.pk, livemode=False)
    live_key = shop_services.api_key_issue(client_id=client.pk)
    # then
    assert test_key.raw.startswith("cop_test_")
    assert not test_key.key.livemode
    assert live_key.raw.startswith("cop_")
    assert not live_key.raw.startswith("cop_test_")
    assert live_key.key.livemode


def test_a_key_whose_stored_mode_disagrees_with_its_prefix_is_refused() -> None:
    # given a test key whose row was turned live behind the service's back
    client = ApiClientFactory()
    api = api_in_test_mode(client)
    ApiKey.objects.filter(client=client).update(livemode=True)
    # when
    response = api.get("/api/v1/orders/")
    # then
    assert response.status_code == 401


def test_campaigns_are_seen_and_claimed_in_their_own_mode_only() -> None:
    # given
    client = ApiClientFactory()
    live, test = api_for(client), api_in_test_mode(client)
    live_campaign = CampaignFactory()
    test_campaign = CampaignFactory(livemode=False)
    # when / then: each key sees its own mode's campaign, the other is not found
    assert [c["slug"] for c in live.get("/api/v1/campaigns/").json()] == [live_campaign.slug]
    assert [c["slug"] for c in test.get("/api/v1/campaigns/").json()] == [test_campaign.slug]
    assert test.get(f"/api/v1/campaigns/{test_campaign.slug}/").json()["livemode"] is False
    for api, other in ((live, test_campaign), (test, live_campaign)):
        assert api.get(f"/api/v1/campaigns/{other.slug}/").status_code == 404
        refused = claim(api, other.slug)
        assert (refused.status_code, refused.json()["error"]) == (404, "not_found")
    assert claim(live, live_campaign.slug).status_code == 201
    assert claim(test, test_campaign.slug).status_code == 201
    # a customer's coupons are listed by the mode of the key asking
    live_codes = live.get("/api/v1/customers/c-1/coupons/").json()["results"]
    test_codes = test.get("/api/v1/customers/c-1/coupons/").json()["results"]
    assert [c["campaign"] for c in live_codes] == [live_campaign.slug]
    assert [c["campaign"] for c in test_codes] == [test_campaign.slug]


def test_products_and_orders_are_in_their_own_mode_only() -> None:
    # given
    client = ApiClientFactory()
    live, test = api_for(client), api_in_test_mode(client)
    live_tea = ProductFactory()
    test_tea = ProductFactory(livemode=False)
    # when / then: each key lists and orders its own mode's products
    assert [p["sku"] for p in live.get("/api/v1/products/").json()["results"]] == [live_tea.sku]
    assert [p["sku"] for p in test.get("/api/v1/products/").json()["results"]] == [test_tea.sku]
    for api, other in ((live, test_tea), (test, live_tea)):
        refused = place(api, other.sku)
        assert (refused.status_code, refused.json()["error"]) == (400, "invalid"), refused.content
    live_order = place(live, live_tea.sku).json()
    test_order = place(test, test_tea.sku).json()
    assert (live_order["livemode"], test_order["livemode"]) == (True, False)
    assert not Order.objects.get(public_id=test_order["id"]).livemode
    # each key reads, lists and cancels only its own mode's orders
    for api, mine, other in ((live, live_order, test_order), (test, test_order, live_order)):
        assert [o["id"] for o in api.get("/api/v1/orders/").json()["results"]] == [mine["id"]]
        assert api.get(f"/api/v1/orders/{other['id']}/").status_code == 404
        assert api.post(f"/api/v1/orders/{other['id']}/cancel/").status_code == 404
        assert api.get(f"/api/v1/orders/{mine['id']}/").status_code == 200


def test_a_live_coupon_gives_a_test_order_no_discount_and_no_hold() -> None:
    # given a live coupon of this customer, and a test product
    client = ApiClientFactory()
    live, test = api_for(client), api_in_test_mode(client)
    campaign = CampaignFactory()
    code = claim(live, campaign.slug).json()["code"]
    test_tea = ProductFactory(livemode=False)
    # when
    placed = place(test, test_tea.sku, coupon_code=code)
    # then: the order names no coupon of the live campaign (the worker rejects it
    # coupon_invalid, as any coupon that is not the customer's)
    assert placed.status_code == 202, placed.content
    order = Order.objects.get(public_id=placed.json()["id"])
    assert (order.coupon_id, order.campaign_id, order.discount) == (None, None, 0)


def test_a_key_replayed_across_modes_is_refused() -> None:
    # given
    client = ApiClientFactory()
    live, test = api_for(client), api_in_test_mode(client)
    test_tea = ProductFactory(livemode=False)
    body = {"customer_id": "c-1", "items": [{"sku": test_tea.sku, "quantity": 1}]}
    first = test.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 202
    # when
    again = live.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    # then
    assert (again.status_code, again.json()["error"]) == (422, "idempotency_key_reused")
    assert Order.objects.count() == 1


def test_test_orders_are_not_counted_in_the_business_figures() -> None:
    # given
    client = ApiClientFactory()
    test_tea = ProductFactory(livemode=False)
    before = metrics.TRANSITIONS.labels("received", "cancelled")._value.get()
    placed = place(api_in_test_mode(client), test_tea.sku).json()
    # when
    response = api_in_test_mode(client).post(f"/api/v1/orders/{placed['id']}/cancel/")
    # then
    assert response.status_code == 200, response.content
    assert metrics.TRANSITIONS.labels("received", "cancelled")._value.get() == before
    assert Product.objects.get(pk=test_tea.pk).livemode is False


def test_a_test_charge_goes_to_the_test_gateway_and_spends_no_live_gateway_token(
    gateway, test_gateway
) -> None:
    # given: the live gateway's limit stopped
    shop_services.rate_limit_set(scope=RateLimit.Scope.GATEWAY, per_second=0, burst=1, actor="test")
    job = {
        "order_id": 1,
        "payment_id": 1,
        "attempt": 1,
        "amount": 1100,
        "currency": "CNY",
        "customer": "c-1",
        "ask_first": False,
    }
    test_job = settlement.ChargeJob(
        **job, idempotency_key="k-test", reference="r-test", livemode=False
    )
    live_job = settlement.ChargeJob(**job, idempotency_key="k-live", reference="r-live")
    # when
    test_outcome = settlement.payment_attempt(settlement.gateway(False), test_job)
    live_outcome = settlement.payment_attempt(settlement.gateway(), live_job)
    # then: the test charge went through at the test gateway; the live one waits for a token
    assert test_outcome.kind == "succeeded"
    assert (live_outcome.kind, live_outcome.error) == ("retry", settlement.UNSENT)
    assert [c["reference"] for c in ledger(test_gateway)["charges"]] == ["r-test"]
    assert ledger(gateway)["charges"] == []
