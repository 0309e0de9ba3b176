"""Admission control at the API and honest places in line: over-limit clients and customers
get 429 with Retry-After; hopeless orders and claims are answered at once without a row;
a campaign at its backlog ceiling sheds with 429; positions are distinct, in arrival order,
and the wait follows the measured drain rate."""

from __future__ import annotations

import uuid
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django.fixtures import Settings
from rest_framework.response import Response
from rest_framework.test import APIClient

from coupons.models import Campaign, Coupon, CouponSlice
from infra import fast
from orders import waiting_line
from orders.models import Order
from orders.services import ItemIn, order_place
from shop import services as shop_services
from shop.models import ApiClient, Product, RateLimit
from tests.conftest import api_for
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.orders.test_races import race

pytestmark = pytest.mark.django_db

ORDERS = "/api/v1/orders/"


def post_order(api: APIClient, customer: str, sku: str, **extra: object):
    body = {"customer_id": customer, "items": [{"sku": sku, "quantity": 1}], **extra}
    return api.post(ORDERS, body, format="json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)


def assert_overloaded(response) -> None:
    assert response.status_code == 429
    assert response.json()["error"] == "overloaded"
    assert int(response["Retry-After"]) >= 1
    assert response.json()["retry_after"] == int(response["Retry-After"])


def test_a_customer_over_its_limit_gets_429_and_others_do_not(api: APIClient) -> None:
    # given: two requests per customer, then one a minute
    shop_services.rate_limit_set(
        scope=RateLimit.Scope.CUSTOMER_REQUESTS, per_second=1 / 60, burst=2, actor="test"
    )
    tea = ProductFactory()
    # when
    answers = [post_order(api, "eager", tea.sku) for _ in range(3)]
    other = post_order(api, "patient", tea.sku)
    # then
    assert [a.status_code for a in answers[:2]] == [202, 202]
    assert_overloaded(answers[2])
    assert other.status_code == 202
    assert Order.objects.count() == 3


def test_a_client_over_its_limit_gets_429(api: APIClient) -> None:
    # given
    shop_services.rate_limit_set(
        scope=RateLimit.Scope.CLIENT_REQUESTS, per_second=1 / 60, burst=1, actor="test"
    )
    tea = ProductFactory()
    # when
    first, second = post_order(api, "c-1", tea.sku), post_order(api, "c-2", tea.sku)
    # then
    assert first.status_code == 202
    assert_overloaded(second)


def test_a_sold_out_campaign_answers_claims_at_once_without_a_write(
    api: APIClient, settings: Settings
) -> None:
    # given: a campaign whose one coupon is gone, the per-process copies kept a second
    settings.INTAKE_CACHE_SECONDS = 1.0
    campaign = CampaignFactory(coupons_total=1)
    first = post_claim(api, campaign.slug, "c-1", key="a")
    slices = sorted(CouponSlice.objects.values_list("number", "issued", "cap"))
    # when: one claim finds it sold out, then another comes
    refused = post_claim(api, campaign.slug, "c-2", key="b")
    with CaptureQueriesContext(connection) as queries:
        again = post_claim(api, campaign.slug, "c-3", key="c")
    # then: nothing was written, and the second answer took one read (the replay check)
    assert first.status_code == 201
    for response in (refused, again):
        assert (response.status_code, response.json()["error"]) == (410, "sold_out")
    assert Coupon.objects.count() == 1
    assert sorted(CouponSlice.objects.values_list("number", "issued", "cap")) == slices
    claim_queries = [q["sql"] for q in queries if "coupons_" in q["sql"]]
    assert len(claim_queries) == 1, claim_queries
    assert claim_queries[0].lstrip().startswith("SELECT")


def post_claim(api: APIClient, slug: str, customer_id: str, *, key: str) -> Response:
    return api.post(
        f"/api/v1/campaigns/{slug}/claims/",
        {"customer_id": customer_id},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        ("no_stock", 410, "sold_out"),
        ("too_few", 409, "out_of_stock"),
        ("budget_spent", 409, "budget_exhausted"),
        ("paused", 409, "campaign_not_active"),
    ],
)
def test_hopeless_orders_are_answered_at_once_without_a_row(
    chatbot: ApiClient, api: APIClient, setup: str, status: int, code: str
) -> None:
    # given
    campaign = CampaignFactory(budget_total=10_000)
    tea = ProductFactory(stock=5)
    coupon = claim(chatbot, campaign, "c-1")
    quantity = 1
    if setup == "no_stock":
        Product.objects.filter(pk=tea.pk).update(stock=0)
    elif setup == "too_few":
        quantity = 6
    elif setup == "budget_spent":
        Campaign.objects.filter(pk=campaign.pk).update(budget_spent=9_000)
    elif setup == "paused":
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)
    # when
    response = api.post(
        ORDERS,
        {
            "customer_id": "c-1",
            "items": [{"sku": tea.sku, "quantity": quantity}],
            "coupon_code": coupon.code,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    # then
    assert (response.status_code, response.json()["error"]) == (status, code)
    assert not Order.objects.exists()


def test_the_backlog_ceiling_sheds_with_429_and_stores_nothing(
    chatbot: ApiClient, api: APIClient
) -> None:
    # given: a line of three, nobody draining it
    campaign = CampaignFactory(backlog_ceiling=3, coupons_total=10)
    tea = ProductFactory(stock=100)
    coupons = [claim(chatbot, campaign, f"c-{i}") for i in range(5)]
    # when
    answers = [post_order(api, c.customer_id, tea.sku, coupon_code=c.code) for c in coupons]
    # then
    assert [a.status_code for a in answers[:3]] == [202, 202, 202]
    for shed in answers[3:]:
        assert_overloaded(shed)
    assert Order.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_orders_get_distinct_places_and_replays_keep_theirs() -> None:
    # given
    client = ApiClientFactory()
    tea = ProductFactory(stock=1000)
    # when: 40 orders at once, nobody draining the line
    placed = race(
        [lambda i=i: place(client, f"c-{i}", [(tea, 1)], key=f"k-{i}") for i in range(40)]
    )
    spots = {o.pk: waiting_line.spot(None, o.queue_ticket).position for o in placed}
    again = place(client, "c-7", [(tea, 1)], key="k-7")
    latecomer = place(client, "late", [(tea, 1)])
    # then
    assert sorted(spots.values()) == list(range(1, 41))
    by_ticket = sorted(placed, key=lambda o: o.queue_ticket)
    assert [spots[o.pk] for o in by_ticket] == list(range(1, 41))  # arrival order
    assert (
        waiting_line.spot(None, again.queue_ticket).position == spots[again.pk]
    )  # no better place
    assert waiting_line.spot(None, latecomer.queue_ticket).position == 41


def test_the_estimated_wait_follows_the_measured_drain_rate(chatbot: ApiClient) -> None:
    # given: the line drained 100 orders a second for the last ten seconds
    tea = ProductFactory(stock=10_000)
    orders = [place(chatbot, f"c-{i}", [(tea, 1)]) for i in range(3)]
    now = 1_800_000_000.0
    with mock.patch("orders.waiting_line.time.time", side_effect=lambda: now):
        for second in range(10):
            now = 1_800_000_000.0 + second - 10
            waiting_line.tickets_done(None, 100)
        now = 1_800_000_000.0
        fast.client().set("cop:q:none:out", 0)  # the 1,000 drained were other orders
        fast.client().set("cop:q:none:in", 600)
        placed = order_place(
            client_id=chatbot.pk,
            customer_id="late",
            items=[ItemIn(sku=tea.sku, quantity=1)],
            idempotency_key="late",
        )
        spot = waiting_line.spot(None, placed.order.queue_ticket)
    # then: 601st in line at 100/s → about 6 s, told at acceptance and when asked later
    assert orders
    assert spot.position == 601
    assert 5 <= spot.estimated_wait_seconds <= 7
    assert placed.queue == spot


def test_a_replay_redis_forgot_is_still_one_order_and_the_line_stays_true(
    chatbot: ApiClient,
) -> None:
    # given: an order in line, and Redis no longer remembering its key (expiry or restart)
    tea = ProductFactory(stock=100)
    first = place(chatbot, "c-1", [(tea, 1)], key="k-1")
    for key in fast.client().scan_iter("cop:seen:*"):
        fast.client().delete(key)
    # when: the chatbot replays it, then a new order comes
    again = place(chatbot, "c-1", [(tea, 1)], key="k-1")
    newcomer = place(chatbot, "c-2", [(tea, 1)])
    # then: the replay is the first order, and the line holds exactly two orders
    assert again.pk == first.pk
    assert Order.objects.count() == 2
    assert waiting_line.backlog(None).position == 2
    assert waiting_line.spot(None, newcomer.queue_ticket).position == 2


def test_intake_reads_products_and_campaign_terms_from_its_short_lived_copy(
    chatbot: ApiClient, settings
) -> None:
    # given: copies kept for a minute, and a product read once
    from shop.selectors import product_cache  # noqa: PLC0415

    settings.INTAKE_CACHE_SECONDS = 60
    product_cache.clear()
    tea = ProductFactory(stock=5)
    place(chatbot, "c-1", [(tea, 1)])
    # when: the product sells out in the database
    Product.objects.filter(pk=tea.pk).update(stock=0)
    accepted = post_order(api_for(chatbot), "c-2", tea.sku)
    product_cache.clear()
    refused = post_order(api_for(chatbot), "c-3", tea.sku)
    # then: the copy let one more order in line (the worker rejects it under locks), and
    # a fresh read answers sold out at once
    assert accepted.status_code == 202
    assert refused.status_code == 410
    assert refused.json()["error"] == "sold_out"
