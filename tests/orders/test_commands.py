"""Operator commands: seed_demo and create_api_key print keys that really authenticate."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from coupons.models import Campaign
from orders.models import Order
from shop.models import ApiClient, ApiKey, Product

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue().strip()


def authenticates(key: str) -> bool:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return api.get("/api/v1/campaigns/").status_code == 200


def test_seed_demo_builds_an_orderable_campaign_and_is_safe_to_rerun() -> None:
    # given / when
    first = run("seed_demo")
    second = run("seed_demo")
    # then
    campaign = Campaign.objects.get(slug="spring-free-order")
    assert campaign.is_open_at(campaign.starts_at)
    assert (campaign.max_discount, campaign.per_customer_limit) == (2500, 1)
    assert Campaign.objects.filter(livemode=True).count() == 1
    assert Product.objects.filter(sku="TM-MILKTEA-L", stock__gt=0, livemode=True).exists()
    assert first != second  # a new key each run; older ones keep working
    assert authenticates(first)
    assert authenticates(second)
    assert ApiKey.objects.filter(client__name="demo-chatbot").count() == 2


def test_seed_demo_seeds_test_mode_and_prints_a_test_key_on_request() -> None:
    # given / when
    live_key, test_key = run("seed_demo", "--test-key").split()
    # then: the test key sees the test campaign and products, the live key the live ones
    assert test_key.startswith("cop_test_")
    assert not live_key.startswith("cop_test_")
    test_campaign = Campaign.objects.get(slug="spring-free-order-test")
    assert not test_campaign.livemode
    assert Product.objects.filter(sku="TEST-TM-MILKTEA-L", livemode=False, stock__gt=0).exists()
    for key, slug in ((live_key, "spring-free-order"), (test_key, "spring-free-order-test")):
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        assert [c["slug"] for c in api.get("/api/v1/campaigns/").json()] == [slug]


def test_create_api_key_prints_a_key_stored_only_as_a_hash() -> None:
    # given / when
    key = run("create_api_key", "acme-bot", "--label", "rotation 1")
    # then
    stored = ApiKey.objects.get(client__name="acme-bot")
    assert key.startswith("cop_")
    assert key not in (stored.key_hash, stored.prefix)
    assert stored.label == "rotation 1"
    assert authenticates(key)
    assert ApiClient.objects.filter(name="acme-bot").count() == 1


def test_create_api_key_issues_a_test_key_on_request() -> None:
    # given / when
    key = run("create_api_key", "acme-bot", "--test")
    # then
    assert key.startswith("cop_test_")
    assert not ApiKey.objects.get(client__name="acme-bot").livemode
    assert authenticates(key)


@pytest.mark.django_db(transaction=True)
def test_demo_burst_puts_shoppers_through_the_http_api(live_server) -> None:
    # given: the demo campaign, and the app serving HTTP
    run("seed_demo", "--no-key")
    # when
    summary = run("demo_burst", "--orders", "40", "--url", live_server.url, "--concurrency", "4")
    # then: every shopper claimed and ordered, through the real endpoints
    assert "40 shoppers" in summary
    assert "'accepted': 40" in summary
    assert Order.objects.filter(client__name="demo-burst").count() == 40
