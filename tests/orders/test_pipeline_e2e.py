"""End to end through a real Celery worker process and the sandbox gateway: orders placed
through the API reach every terminal status, and the figures read back through the API add
up afterwards."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from coupons.models import Campaign, Coupon
from orders.models import Order, Payment
from orders.services.settlement import gateway as gateway_client
from shop.models import ApiClient, Product
from tests.conftest import api_for
from tests.factories.coupons import CampaignFactory
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.pipeline import (
    all_terminal,
    callback_receiver,
    ledger,
    succeeded_charges_by_reference,
    wait_for,
)

pytestmark = [
    pytest.mark.pipeline,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker"),
]


def claim(api: APIClient, slug: str, customer_id: str) -> str:
    response = api.post(
        f"/api/v1/campaigns/{slug}/claims/",
        {"customer_id": customer_id},
        format="json",
        HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
    )
    assert response.status_code == 201, response.content
    return response.json()["code"]


def order(api: APIClient, customer_id: str, sku: str, quantity: int = 1, **extra: object) -> dict:
    body = {"customer_id": customer_id, "items": [{"sku": sku, "quantity": quantity}], **extra}
    response = api.post(
        "/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex
    )
    assert response.status_code == 202, response.content
    return response.json()


def settled(api: APIClient, order_id: str) -> dict:
    pk = Order.objects.get(public_id=order_id).pk
    wait_for(all_terminal([pk]), what=f"order {order_id}")
    return api.get(f"/api/v1/orders/{order_id}/").json()


def test_claim_to_paid_and_the_figures_add_up(gateway) -> None:
    # given
    client = ApiClientFactory()
    api = api_for(client)
    campaign = CampaignFactory(budget_total=100_000, coupons_total=10)
    tea = ProductFactory(price=1800, stock=10)
    code = claim(api, campaign.slug, "c-42")
    # when
    placed = order(api, "c-42", tea.sku, 2, coupon_code=code)
    done = settled(api, placed["id"])
    # then
    assert done["status"] == "paid"
    assert (done["subtotal"], done["discount"], done["payable"]) == (3600, 2500, 1100)
    charges = ledger(gateway)["charges"]
    assert [(c["reference"], c["amount"], c["status"]) for c in charges] == [
        (placed["id"], 1100, "succeeded")
    ]
    figures = api.get(f"/api/v1/campaigns/{campaign.slug}/").json()
    assert figures["coupons_remaining"] == 9
    assert figures["budget_remaining"] == 100_000 - 2500
    coupons = api.get("/api/v1/customers/c-42/coupons/").json()["results"]
    assert [c["status"] for c in coupons] == ["redeemed"]
    assert Product.objects.get(pk=tea.pk).stock == 8


def test_nothing_to_pay_is_paid_without_a_charge(gateway) -> None:
    # given: the coupon covers the whole order
    api = api_for(ApiClientFactory())
    campaign = CampaignFactory()
    tea = ProductFactory(price=1800)
    code = claim(api, campaign.slug, "c-1")
    # when
    done = settled(api, order(api, "c-1", tea.sku, 1, coupon_code=code)["id"])
    # then
    assert (done["status"], done["payable"]) == ("paid", 0)
    assert ledger(gateway)["charges"] == []


@pytest.mark.parametrize(
    "reason",
    [
        "coupon_invalid",
        "coupon_expired",
        "coupon_in_use",
        "limit_reached",
        "sold_out",
        "out_of_stock",
        "budget_exhausted",
        "campaign_not_active",
    ],
)
def test_each_rejection_through_the_worker(gateway, reason: str) -> None:
    # given
    api = api_for(ApiClientFactory())
    campaign = CampaignFactory(per_customer_limit=2, budget_total=10_000)
    tea = ProductFactory(price=1800, stock=3)
    code = claim(api, campaign.slug, "c-1")
    extra: dict[str, object] = {"coupon_code": code}
    quantity = 1
    if reason == "coupon_invalid":
        extra = {"coupon_code": "NOTACOUPON"}
    elif reason == "coupon_expired":
        Coupon.objects.filter(code=code).update(valid_until=campaign.starts_at)
    elif reason == "coupon_in_use":
        settled(api, order(api, "c-1", tea.sku, 1, coupon_code=code)["id"])  # paid: redeemed
    elif reason == "limit_reached":
        settled(
            api, order(api, "c-1", tea.sku, 1, coupon_code=claim(api, campaign.slug, "c-1"))["id"]
        )
        Campaign.objects.filter(pk=campaign.pk).update(per_customer_limit=1)
    elif reason == "out_of_stock":
        quantity = 3
    # when: what runs out does so while the order waits in line (intake refuses it at once
    # otherwise); the worker hears of the order only at commit
    with transaction.atomic():
        placed = order(api, "c-1", tea.sku, quantity, **extra)
        if reason == "sold_out":
            Product.objects.filter(pk=tea.pk).update(stock=0)
        elif reason == "out_of_stock":
            Product.objects.filter(pk=tea.pk).update(stock=2)
        elif reason == "budget_exhausted":
            Campaign.objects.filter(pk=campaign.pk).update(budget_spent=9_000)
        elif reason == "campaign_not_active":
            Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.ENDED)
    done = settled(api, placed["id"])
    # then
    assert (done["status"], done["reason"]) == ("rejected", reason)


def test_a_declined_payment_releases_everything(gateway) -> None:
    # given: the sandbox declines customers whose id starts with "decline"
    api = api_for(ApiClientFactory())
    campaign = CampaignFactory(budget_total=10_000)
    burger = ProductFactory(price=3200, stock=5)
    code = claim(api, campaign.slug, "decline-7")
    # when
    done = settled(api, order(api, "decline-7", burger.sku, 1, coupon_code=code)["id"])
    # then
    assert done["status"] == "payment_failed"
    assert [c["status"] for c in ledger(gateway)["charges"]] == ["declined"]
    assert Product.objects.get(pk=burger.pk).stock == 5
    assert Campaign.objects.get(pk=campaign.pk).budget_held == 0
    assert Coupon.objects.get(code=code).status == Coupon.Status.ISSUED


def test_an_order_waiting_on_a_rate_limited_gateway_can_be_cancelled(gateway) -> None:
    # given: the gateway's quota is used up, so the charge waits ("retry later")
    gateway.post("/_sandbox/config", json={"quota_rps": 0.01, "quota_burst": 1}).raise_for_status()
    gateway_client().charge(
        idempotency_key="use-the-token", amount=1, currency="CNY", reference="x", customer="x"
    )
    api = api_for(ApiClientFactory())
    campaign = CampaignFactory(budget_total=10_000)
    tea = ProductFactory(price=3000, stock=5)  # 500 left to pay after the coupon
    placed = order(api, "c-1", tea.sku, 1, coupon_code=claim(api, campaign.slug, "c-1"))
    wait_for(
        lambda: Payment.objects.filter(order__public_id=placed["id"], status="retry").exists(),
        what="the charge to be refused for quota",
    )
    # when
    cancelled = api.post(f"/api/v1/orders/{placed['id']}/cancel/")
    # then
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert Product.objects.get(pk=tea.pk).stock == 5
    assert Campaign.objects.get(pk=campaign.pk).budget_held == 0
    assert [c["reference"] for c in ledger(gateway)["charges"]] == ["x"]


def test_a_dropped_answer_is_settled_by_asking_and_charged_once(gateway) -> None:
    # given: the gateway records every charge and then loses the answer
    gateway.post("/_sandbox/config", json={"drop_rate": 1.0}).raise_for_status()
    api = api_for(ApiClientFactory())
    tea = ProductFactory(price=1800)
    # when
    done = settled(api, order(api, "c-1", tea.sku, 1)["id"])
    # then
    assert done["status"] == "paid"
    assert succeeded_charges_by_reference(gateway) == {done["id"]: 1}
    assert ledger(gateway)["stats"]["dropped"] >= 1


def test_gateway_errors_after_the_charge_still_charge_once(gateway) -> None:
    # given: a 500 after the charge was recorded, every time
    gateway.post("/_sandbox/config", json={"error_after_charge_rate": 1.0}).raise_for_status()
    api = api_for(ApiClientFactory())
    tea = ProductFactory(price=1800)
    # when
    done = settled(api, order(api, "c-1", tea.sku, 1)["id"])
    # then
    assert done["status"] == "paid"
    assert succeeded_charges_by_reference(gateway) == {done["id"]: 1}


def test_status_changes_reach_the_callback_url_signed_and_in_order(gateway) -> None:
    # given
    client: ApiClient = ApiClientFactory()
    api = api_for(client)
    tea = ProductFactory(price=1800)
    # when
    with callback_receiver() as receiver:
        placed = order(api, "c-1", tea.sku, 1, callback_url=receiver.url)
        settled(api, placed["id"])
        wait_for(lambda: receiver.with_status("paid"), what="the paid callback")
    # then
    statuses = [body["status"] for body in receiver.bodies()]
    # Both, in order; or only the latest, when reserved was still pending beside it, as
    # docs/integrator-guide.md's Callbacks section allows
    assert statuses in (["reserved", "paid"], ["paid"])
    placed_by = Order.objects.get(public_id=placed["id"]).request_id  # the POST's request id
    assert placed_by
    for headers, body in receiver.deliveries:
        assert headers["X-Request-ID"] == placed_by
        stamp, mac = (part.split("=", 1)[1] for part in headers["X-Signature"].split(","))
        expected = hmac.new(
            client.webhook_secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256
        )
        assert hmac.compare_digest(mac, expected.hexdigest())
        assert json.loads(body)["id"] == placed["id"]
