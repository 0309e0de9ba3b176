"""Coupons' refusals on the chatbot API (claims, a customer's coupons) answer a 4xx JSON
envelope, and a claim held up by a lock answers an honest 429; the rules every endpoint shares
are in tests/infra/test_api_errors.py."""

from __future__ import annotations

from urllib.parse import quote

import psycopg
import pytest
from django.db import connection
from rest_framework.test import APIClient

from coupons.selectors import campaign_coupons_issued
from tests.api_errors import (
    BAD_CUSTOMER_IDS,
    CLAIMS,
    assert_envelope,
    catalogue,
    nothing_written,
    post_json,
)
from tests.conftest import database_url_of_tests
from tests.factories.coupons import CampaignFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _catalogue(db: None) -> None:
    catalogue()


# --- Claims: wrong body ---------------------------------------------------------------------

BAD_CLAIMS = {
    "customer-number": ({"customer_id": 42}, "customer_id"),
    "customer-null": ({"customer_id": None}, "customer_id"),
    "customer-bool": ({"customer_id": True}, "customer_id"),
    "customer-missing": ({}, "customer_id"),
    "unknown-field": ({"customer_id": "c-42", "campaign": "other"}, "campaign"),
}


@pytest.mark.parametrize(("body", "field"), BAD_CLAIMS.values(), ids=BAD_CLAIMS.keys())
def test_a_malformed_claim_is_invalid_and_names_the_field(
    api: APIClient, body: dict[str, object], field: str
) -> None:
    # given / when
    response = post_json(api, CLAIMS, body)
    # then
    result = assert_envelope(response, 400, "invalid")
    assert field in result["fields"]
    nothing_written()


# --- Customer ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "customer_id",
    [v for v in BAD_CUSTOMER_IDS.values() if v and "/" not in v],
    ids=[k for k, v in BAD_CUSTOMER_IDS.items() if v and "/" not in v],
)
def test_a_bad_customer_id_in_the_coupons_path_is_invalid(api: APIClient, customer_id: str) -> None:
    # given / when
    response = api.get(f"/api/v1/customers/{quote(customer_id, safe='')}/coupons/")
    # then
    result = assert_envelope(response, 400, "invalid")
    assert "customer_id" in result["fields"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/customers//coupons/",
        "/api/v1/customers/../coupons/x/",
        "/api/v1/customers/c%2F42/coupons/",
        "/api/v1/customers/..%2F/coupons/",
    ],
)
def test_a_customer_path_that_is_no_customer_is_not_found(api: APIClient, path: str) -> None:
    # given / when
    response = api.get(path)
    # then
    assert_envelope(response, 404, "not_found")


# --- Locks ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_request_stuck_behind_a_row_lock_answers_429_then_succeeds(api: APIClient) -> None:
    # given: another session holds every coupon slice of the campaign, as a stuck session
    # would, and this connection waits at most 200 ms for a lock (the web server's is 2 s)
    campaign = CampaignFactory()
    path = f"/api/v1/campaigns/{campaign.slug}/claims/"
    body = {"customer_id": "c-1"}
    with psycopg.connect(database_url_of_tests()) as other:
        other.execute(
            "SELECT 1 FROM coupons_couponslice WHERE campaign_id = %s FOR NO KEY UPDATE",
            [campaign.pk],
        )
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        try:
            # when
            stuck = api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="claim-1")
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    # then: an honest 429, never a 5xx, and the same key goes through once the lock is gone
    assert stuck.status_code == 429, stuck.content
    assert stuck.json()["error"] == "overloaded"
    assert stuck["Retry-After"] == str(stuck.json()["retry_after"])
    again = api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="claim-1")
    assert again.status_code == 201, again.content


@pytest.mark.django_db(transaction=True)
def test_a_claim_does_not_wait_for_a_batch_holding_the_campaign_row(api: APIClient) -> None:
    # given: another session holds the campaign's row, as a reservation batch holding budget
    # does for its whole batch, and this connection would give up on a lock after 200 ms
    campaign = CampaignFactory()
    path = f"/api/v1/campaigns/{campaign.slug}/claims/"
    with psycopg.connect(database_url_of_tests()) as other:
        other.execute(
            "SELECT 1 FROM coupons_campaign WHERE id = %s FOR NO KEY UPDATE", [campaign.pk]
        )
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        try:
            # when
            claimed = api.post(
                path, {"customer_id": "c-1"}, format="json", HTTP_IDEMPOTENCY_KEY="claim-1"
            )
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    # then: the claim only read the campaign row, so it went through while it was held
    assert claimed.status_code == 201, claimed.content
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 1
