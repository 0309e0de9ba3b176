"""Every answer to a rate-limited request says where the client stands (RateLimit-Policy and
RateLimit, draft-ietf-httpapi-ratelimit-headers), counted by the same Redis call that took
the token; a 429's Retry-After is the refusing bucket's real refill time; GETs and unlimited
buckets carry no such headers (docs/integrator-guide.md, Rate limits and 429)."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from infra import ratelimit
from shop import services as shop_services
from shop.models import RateLimit
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"


def limit(scope: str, per_second: float, burst: int) -> None:
    shop_services.rate_limit_set(scope=scope, per_second=per_second, burst=burst, actor="test")


def post_order(api: APIClient, customer: str, sku: str):
    body = {"customer_id": customer, "items": [{"sku": sku, "quantity": 1}]}
    return api.post(ORDERS, body, format="json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)


def cancel(api: APIClient):
    return api.post(f"{ORDERS}{uuid.uuid4()}/cancel/", format="json")


def test_orders_count_down_the_client_bucket_and_the_429_waits_for_its_refill(
    api: APIClient,
) -> None:
    # given: three orders at once, then one every ten seconds (slow enough that the few
    # milliseconds between the requests never show in whole seconds)
    limit(RateLimit.Scope.CLIENT_REQUESTS, 0.1, 3)
    tea = ProductFactory()
    # when
    answers = [post_order(api, f"c-{i}", tea.sku) for i in range(4)]
    # then: the tokens left go 2, 1, 0; the bucket is full again 30 s after its last token
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert {a["RateLimit-Policy"] for a in answers} == {'"client";q=3;w=30'}
    assert [a["RateLimit"] for a in answers[:3]] == [
        '"client";r=2;t=10',
        '"client";r=1;t=20',
        '"client";r=0;t=30',
    ]
    refused = answers[3]
    assert refused["RateLimit"] == '"client";r=0;t=30'
    # one token comes back after 1 / 0.1 = 10 s
    assert refused["Retry-After"] == "10"
    assert refused.json()["retry_after"] == 10


def test_a_request_for_a_shopper_reports_both_buckets_and_the_shoppers_refusal(
    api: APIClient,
) -> None:
    # given
    limit(RateLimit.Scope.CLIENT_REQUESTS, 100, 50)
    limit(RateLimit.Scope.CUSTOMER_REQUESTS, 0.5, 1)
    tea = ProductFactory()
    # when
    first, second = post_order(api, "eager", tea.sku), post_order(api, "eager", tea.sku)
    # then
    assert first.status_code == 202
    assert first["RateLimit-Policy"] == '"client";q=50;w=1, "customer";q=1;w=2'
    assert first["RateLimit"] == '"client";r=49;t=1, "customer";r=0;t=2'
    assert second.status_code == 429
    assert second["RateLimit"] == '"customer";r=0;t=2'
    assert second["Retry-After"] == "2"


def test_the_admission_of_claims_and_cancels_reports_and_refuses_the_same_way(
    api: APIClient,
) -> None:
    # given: cancels go through shop.api.throttling.ChatbotAdmission, not intake's script
    limit(RateLimit.Scope.CLIENT_REQUESTS, 0.5, 1)
    # when
    first, second = cancel(api), cancel(api)
    # then: the first is let in (and is a 404: no such order), the second waits 2 s
    assert first.status_code == 404
    assert first["RateLimit-Policy"] == '"client";q=1;w=2'
    assert first["RateLimit"] == '"client";r=0;t=2'
    assert second.status_code == 429
    assert second["RateLimit"] == '"client";r=0;t=2'
    assert second["Retry-After"] == "2"
    assert second.json()["retry_after"] == 2


def test_a_slow_bucket_says_its_real_refill_time(api: APIClient) -> None:
    # given: one request a minute
    limit(RateLimit.Scope.CLIENT_REQUESTS, 1 / 60, 1)
    # when
    cancel(api)
    refused = cancel(api)
    # then
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert refused["RateLimit"] == '"client";r=0;t=60'


def test_gets_and_unlimited_buckets_carry_no_rate_limit_headers(api: APIClient) -> None:
    # given: the tests' defaults are unlimited
    tea = ProductFactory()
    # when
    unlimited = post_order(api, "c-1", tea.sku)
    limit(RateLimit.Scope.CLIENT_REQUESTS, 0.5, 1)
    polled = api.get(ORDERS)
    # then
    assert unlimited.status_code == 202
    assert polled.status_code == 200
    for answer in (unlimited, polled):
        assert "RateLimit" not in answer
        assert "RateLimit-Policy" not in answer


def test_the_take_says_the_tokens_left_in_the_same_call() -> None:
    # given
    bucket = ratelimit.Limit(per_second=0.5, burst=2)
    # when
    first = ratelimit.take("standing", bucket)
    second = ratelimit.take("standing", bucket)
    third = ratelimit.take("standing", bucket)
    # then
    assert first.tokens == pytest.approx(1, abs=0.01)
    assert second.tokens == pytest.approx(0, abs=0.01)
    assert third.granted == 0
    assert third.tokens == pytest.approx(0, abs=0.01)
    assert ratelimit.take("standing", ratelimit.Limit(per_second=None)).tokens is None
