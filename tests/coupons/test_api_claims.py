"""POST /api/v1/campaigns/{slug}/claims/ and GET /api/v1/customers/{id}/coupons/
(docs/integrator-guide.md, Claiming a coupon)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from coupons.models import Campaign, Coupon
from coupons.selectors import campaign_coupons_issued
from orders import services as orders_services
from shop.models import ApiClient
from tests.conftest import api_for
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ApiClientFactory, ProductFactory

pytestmark = pytest.mark.django_db

COUPON_FIELDS = {
    "code",
    "campaign",
    "customer_id",
    "status",
    "max_discount",
    "currency",
    "valid_until",
}


def post_claim(api: APIClient, slug: str, body: object, key: str | None = "key-1"):
    headers = {} if key is None else {"Idempotency-Key": key}
    return api.post(f"/api/v1/campaigns/{slug}/claims/", body, format="json", headers=headers)


def assert_error(response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


def ago(**delta: float) -> datetime:
    return timezone.now() - timedelta(**delta)


def test_a_claim_issues_a_coupon_exactly_as_the_contract_shows(
    api: APIClient, chatbot: ApiClient
) -> None:
    # given
    campaign = CampaignFactory(slug="spring-free-order", max_discount=2500)
    # when
    response = post_claim(api, "spring-free-order", {"customer_id": "c-42"})
    # then
    assert response.status_code == 201
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == COUPON_FIELDS
    coupon = Coupon.objects.get()
    assert body == {
        "code": coupon.code,
        "campaign": "spring-free-order",
        "customer_id": "c-42",
        "status": "issued",
        "max_discount": 2500,
        "currency": "CNY",
        "valid_until": body["valid_until"],
    }
    assert datetime.fromisoformat(body["valid_until"]) == campaign.coupon_valid_until
    assert datetime.fromisoformat(body["valid_until"]).tzinfo is not None
    assert (coupon.client_id, coupon.customer_id, coupon.campaign_id) == (
        chatbot.pk,
        "c-42",
        campaign.pk,
    )
    campaign.refresh_from_db()
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 1


def test_a_replay_returns_the_same_coupon_and_status_and_issues_nothing_more(
    api: APIClient,
) -> None:
    # given
    campaign = CampaignFactory(per_customer_limit=3)
    first = post_claim(api, campaign.slug, {"customer_id": "c-1"}, key="same-key")
    # when
    again = post_claim(api, campaign.slug, {"customer_id": "c-1"}, key="same-key")
    # then
    assert first.status_code == 201
    assert again.status_code == 201
    assert again.json() == first.json()
    assert Coupon.objects.count() == 1
    campaign.refresh_from_db()
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 1


def test_a_replay_still_answers_after_the_campaign_sold_out(api: APIClient) -> None:
    # given
    campaign = CampaignFactory(coupons_total=1)
    first = post_claim(api, campaign.slug, {"customer_id": "c-1"}, key="k")
    # when
    again = post_claim(api, campaign.slug, {"customer_id": "c-1"}, key="k")
    # then
    assert again.status_code == 201
    assert again.json()["code"] == first.json()["code"]


def test_the_same_key_for_another_customer_is_refused(api: APIClient) -> None:
    # given
    campaign = CampaignFactory(per_customer_limit=3)
    post_claim(api, campaign.slug, {"customer_id": "c-1"}, key="k")
    # when
    response = post_claim(api, campaign.slug, {"customer_id": "c-2"}, key="k")
    # then
    assert_error(response, 422, "idempotency_key_reused")
    assert Coupon.objects.count() == 1


def test_the_same_key_for_another_campaign_is_refused(api: APIClient) -> None:
    # given
    spring, summer = CampaignFactory(), CampaignFactory()
    post_claim(api, spring.slug, {"customer_id": "c-1"}, key="k")
    # when
    response = post_claim(api, summer.slug, {"customer_id": "c-1"}, key="k")
    # then
    assert_error(response, 422, "idempotency_key_reused")
    assert Coupon.objects.count() == 1


def test_keys_belong_to_their_client(api: APIClient, chatbot: ApiClient) -> None:
    # given: another chatbot used the same key first
    campaign = CampaignFactory(per_customer_limit=3)
    other = api_for(ApiClientFactory())
    post_claim(other, campaign.slug, {"customer_id": "c-1"}, key="k")
    # when
    response = post_claim(api, campaign.slug, {"customer_id": "c-1"}, key="k")
    # then
    assert response.status_code == 201
    assert Coupon.objects.filter(client=chatbot).count() == 1


def test_limit_reached(api: APIClient, chatbot: ApiClient) -> None:
    # given
    campaign = CampaignFactory(per_customer_limit=2)
    claim(chatbot, campaign, "c-1")
    claim(chatbot, campaign, "c-1")
    # when
    response = post_claim(api, campaign.slug, {"customer_id": "c-1"}, key="third")
    # then
    assert_error(response, 409, "limit_reached")
    assert Coupon.objects.filter(customer_id="c-1").count() == 2


def test_the_limit_counts_per_customer(api: APIClient, chatbot: ApiClient) -> None:
    # given
    campaign = CampaignFactory(per_customer_limit=1)
    claim(chatbot, campaign, "c-1")
    # when
    response = post_claim(api, campaign.slug, {"customer_id": "c-2"})
    # then
    assert response.status_code == 201


@pytest.mark.parametrize(
    "fields",
    [
        {"status": Campaign.Status.PAUSED},
        {"status": Campaign.Status.ENDED},
        {"starts_at": ago(hours=5), "ends_at": ago(hours=1)},
        {"starts_at": ago(hours=-1), "ends_at": ago(hours=-5)},
    ],
    ids=["paused", "ended-by-staff", "ended-by-clock", "scheduled"],
)
def test_campaign_not_active(api: APIClient, fields: dict[str, object]) -> None:
    # given
    campaign = CampaignFactory(**fields)
    # when
    response = post_claim(api, campaign.slug, {"customer_id": "c-1"})
    # then
    assert_error(response, 409, "campaign_not_active")
    assert Coupon.objects.count() == 0
    campaign.refresh_from_db()
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 0


def test_sold_out_inserts_no_row(api: APIClient, chatbot: ApiClient) -> None:
    # given
    campaign = CampaignFactory(coupons_total=1)
    claim(chatbot, campaign, "c-1")
    before = Coupon.objects.count()
    # when
    response = post_claim(api, campaign.slug, {"customer_id": "c-2"})
    # then
    assert_error(response, 410, "sold_out")
    assert Coupon.objects.count() == before == 1
    campaign.refresh_from_db()
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 1


def test_an_unknown_campaign_is_a_404(api: APIClient) -> None:
    # given
    CampaignFactory()
    # when
    response = post_claim(api, "no-such-campaign", {"customer_id": "c-1"})
    # then
    assert_error(response, 404, "not_found")
    assert Coupon.objects.count() == 0


@pytest.mark.parametrize("key", [None, "", "k" * 256], ids=["missing", "empty", "256-chars"])
def test_the_idempotency_key_is_required_1_to_255_characters(
    api: APIClient, key: str | None
) -> None:
    # given
    campaign = CampaignFactory()
    # when
    response = post_claim(api, campaign.slug, {"customer_id": "c-1"}, key=key)
    # then
    body = assert_error(response, 400, "invalid")
    assert "Idempotency-Key" in body["fields"]
    assert Coupon.objects.count() == 0


def test_a_255_character_key_is_accepted(api: APIClient) -> None:
    # given
    campaign = CampaignFactory()
    # when
    response = post_claim(api, campaign.slug, {"customer_id": "c-1"}, key="k" * 255)
    # then
    assert response.status_code == 201


# --- The customer's coupons ------------------------------------------------------------------


def coupons_of(api: APIClient, customer_id: str):
    return api.get(f"/api/v1/customers/{customer_id}/coupons/")


def test_a_customers_coupons_show_each_status(api: APIClient, chatbot: ApiClient) -> None:
    # given: one coupon in each status, each of its own campaign
    tea = ProductFactory(price=1800, stock=10)
    issued = CampaignFactory(slug="issued")
    claim(chatbot, issued, "c-9")
    redeemed = CampaignFactory(slug="redeemed")
    place(chatbot, "c-9", [(tea, 1)], coupon=claim(chatbot, redeemed, "c-9"))  # payable 0
    orders_services.reservations_take_batch(campaign_id=redeemed.pk, limit=10)
    orders_services.payments_claim_batch(limit=10)  # paid without a charge: coupon redeemed
    reserved = CampaignFactory(slug="reserved")
    place(chatbot, "c-9", [(tea, 2)], coupon=claim(chatbot, reserved, "c-9"))
    orders_services.reservations_take_batch(campaign_id=reserved.pk, limit=10)
    expired = CampaignFactory(slug="expired", coupon_valid_until=ago(minutes=1))
    claim(chatbot, expired, "c-9")
    # when
    response = coupons_of(api, "c-9")
    # then
    assert response.status_code == 200
    results = response.json()["results"]
    assert all(set(c) == COUPON_FIELDS for c in results)
    assert all(c["customer_id"] == "c-9" for c in results)
    assert {c["campaign"]: c["status"] for c in results} == {
        "issued": "issued",
        "reserved": "reserved",
        "redeemed": "redeemed",
        "expired": "expired",
    }
    assert {c["code"] for c in results} == set(Coupon.objects.values_list("code", flat=True))


def test_an_expired_coupon_held_by_an_order_in_flight_shows_reserved(
    api: APIClient, chatbot: ApiClient
) -> None:
    # given: reserved while valid, then the validity ran out
    tea = ProductFactory(price=1800)
    campaign = CampaignFactory()
    coupon = claim(chatbot, campaign, "c-9")
    place(chatbot, "c-9", [(tea, 2)], coupon=coupon)
    orders_services.reservations_take_batch(campaign_id=campaign.pk, limit=10)
    Coupon.objects.filter(pk=coupon.pk).update(valid_until=ago(minutes=1))
    # when
    response = coupons_of(api, "c-9")
    # then
    assert [c["status"] for c in response.json()["results"]] == ["reserved"]


def test_only_that_customers_coupons_are_listed(api: APIClient, chatbot: ApiClient) -> None:
    # given
    campaign = CampaignFactory()
    mine = claim(chatbot, campaign, "c-1")
    claim(chatbot, campaign, "c-2")
    # when
    response = coupons_of(api, "c-1")
    # then
    assert [c["code"] for c in response.json()["results"]] == [mine.code]


def test_another_clients_coupons_are_not_visible(api: APIClient, chatbot: ApiClient) -> None:
    # given: another chatbot serves a shopper with the same id
    campaign = CampaignFactory()
    other = ApiClientFactory()
    theirs = claim(other, campaign, "c-1")
    # when
    mine = coupons_of(api, "c-1")
    their_view = coupons_of(api_for(other), "c-1")
    # then
    assert mine.status_code == 200
    assert mine.json() == {"results": []}
    assert [c["code"] for c in their_view.json()["results"]] == [theirs.code]


def test_a_customer_without_coupons_has_an_empty_list(api: APIClient) -> None:
    # given / when
    response = coupons_of(api, "nobody")
    # then
    assert response.status_code == 200
    assert response.json() == {"results": []}
