"""GET /api/v1/campaigns/ and /api/v1/campaigns/{slug}/
(docs/integrator-guide.md, Campaigns)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from coupons.models import Campaign
from orders import services as orders_services
from shop.models import ApiClient
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db

CAMPAIGN_FIELDS = {
    "slug",
    "name",
    "status",
    "starts_at",
    "ends_at",
    "coupon_valid_until",
    "coupon",
    "per_customer_limit",
    "livemode",
    "coupons_total",
    "coupons_remaining",
    "budget_total",
    "budget_remaining",
    "backlog",
}


def when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"{value} has no timezone"
    return parsed


def test_detail_has_exactly_the_contract_shape(api: APIClient, chatbot: ApiClient) -> None:
    # given
    campaign = CampaignFactory(
        slug="spring-free-order",
        name="Spring free order",
        max_discount=2500,
        per_customer_limit=1,
        coupons_total=1000,
        budget_total=300_000,
    )
    tea = ProductFactory(price=1800)
    first, second = claim(chatbot, campaign, "c-1"), claim(chatbot, campaign, "c-2")
    claim(chatbot, campaign, "c-3")
    place(chatbot, "c-1", [(tea, 2)], coupon=first)
    place(chatbot, "c-2", [(tea, 1)], coupon=second)
    campaign.refresh_from_db()
    # when
    response = api.get("/api/v1/campaigns/spring-free-order/")
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == CAMPAIGN_FIELDS
    assert body["slug"] == "spring-free-order"
    assert body["name"] == "Spring free order"
    assert body["status"] == "active"
    assert when(body["starts_at"]) == campaign.starts_at
    assert when(body["ends_at"]) == campaign.ends_at
    assert when(body["coupon_valid_until"]) == campaign.coupon_valid_until
    assert body["coupon"] == {"kind": "free_order", "max_discount": 2500, "currency": "CNY"}
    assert body["per_customer_limit"] == 1
    assert body["coupons_total"] == 1000
    assert body["coupons_remaining"] == 997
    assert body["budget_total"] == 300_000
    assert body["budget_remaining"] == 300_000  # nothing held yet: both orders still wait
    assert set(body["backlog"]) == {"orders_waiting", "estimated_wait_seconds"}
    assert body["backlog"]["orders_waiting"] == 2
    assert body["backlog"]["estimated_wait_seconds"] >= 1
    for name in (
        "per_customer_limit",
        "coupons_total",
        "coupons_remaining",
        "budget_total",
        "budget_remaining",
    ):
        assert type(body[name]) is int, name


def test_budget_remaining_is_total_minus_held_minus_spent(
    api: APIClient, chatbot: ApiClient
) -> None:
    # given
    campaign = CampaignFactory(max_discount=2500, budget_total=100_000)
    tea = ProductFactory(price=1800)
    held = place(chatbot, "c-1", [(tea, 2)], coupon=claim(chatbot, campaign, "c-1"))
    free = place(chatbot, "c-2", [(tea, 1)], coupon=claim(chatbot, campaign, "c-2"))
    orders_services.reservations_take_batch(campaign_id=campaign.pk, limit=10)
    orders_services.payments_claim_batch(limit=10)  # payable 0: paid without a charge
    held.refresh_from_db()
    free.refresh_from_db()
    assert (held.status, held.discount) == ("reserved", 2500)
    assert (free.status, free.discount) == ("paid", 1800)
    # when
    response = api.get(f"/api/v1/campaigns/{campaign.slug}/")
    # then
    assert response.status_code == 200
    assert response.json()["budget_remaining"] == 100_000 - 2500 - 1800
    assert response.json()["coupons_remaining"] == campaign.coupons_total - 2


def test_an_idle_campaign_has_an_empty_backlog(api: APIClient) -> None:
    # given
    campaign = CampaignFactory()
    # when
    response = api.get(f"/api/v1/campaigns/{campaign.slug}/")
    # then
    assert response.json()["backlog"] == {"orders_waiting": 0, "estimated_wait_seconds": 0}


def hours(n: float) -> datetime:
    return timezone.now() + timedelta(hours=n)


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({}, "active"),
        ({"starts_at": hours(1), "ends_at": hours(5)}, "scheduled"),
        ({"status": Campaign.Status.PAUSED}, "paused"),
        ({"status": Campaign.Status.ENDED}, "ended"),
        ({"starts_at": hours(-5), "ends_at": hours(-1)}, "ended"),
        ({"status": Campaign.Status.PAUSED, "ends_at": hours(-0.5)}, "ended"),
    ],
    ids=["active", "scheduled", "paused", "ended-by-staff", "ended-by-clock", "paused-past-end"],
)
def test_public_status(api: APIClient, fields: dict[str, object], status: str) -> None:
    # given
    campaign = CampaignFactory(**fields)
    # when
    detail = api.get(f"/api/v1/campaigns/{campaign.slug}/")
    listed = api.get("/api/v1/campaigns/")
    # then
    assert detail.status_code == 200
    assert detail.json()["status"] == status
    assert [c["status"] for c in listed.json()] == [status]


def test_list_shows_every_campaign_in_the_detail_shape(api: APIClient, chatbot: ApiClient) -> None:
    # given
    older = CampaignFactory(slug="older", starts_at=hours(-10))
    newer = CampaignFactory(slug="newer", starts_at=hours(-1), coupons_total=5)
    claim(chatbot, newer, "c-1")
    # when
    response = api.get("/api/v1/campaigns/")
    # then
    assert response.status_code == 200
    body = response.json()
    assert [c["slug"] for c in body] == ["newer", "older"]  # newest first
    assert all(set(c) == CAMPAIGN_FIELDS for c in body)
    assert body[0]["coupons_remaining"] == 4
    assert body[1]["coupons_remaining"] == older.coupons_total
    assert body[0] == api.get("/api/v1/campaigns/newer/").json()


def test_an_unknown_slug_is_a_404_envelope(api: APIClient) -> None:
    # given
    CampaignFactory(slug="real-one")
    # when
    response = api.get("/api/v1/campaigns/no-such-campaign/")
    # then
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == "not_found"
    assert isinstance(body["detail"], str)
    assert body["detail"]
