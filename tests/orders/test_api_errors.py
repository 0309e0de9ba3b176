"""Orders' refusals on the chatbot API (order bodies, callbacks, the orders list, unknown
orders) answer a 4xx JSON envelope; the rules every endpoint shares are in
tests/infra/test_api_errors.py."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from shop.models import ApiClient
from tests.api_errors import (
    BAD_CUSTOMER_IDS,
    ORDERS,
    SOME_UUID,
    assert_envelope,
    catalogue,
    item,
    nothing_written,
    order,
    post_json,
)
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _catalogue(db: None) -> None:
    catalogue()


# --- Orders: wrong types, bounds, unknown fields --------------------------------------------

BAD_ORDERS = {
    "quantity-string": (item(quantity="2"), "items"),
    "quantity-float": (item(quantity=2.0), "items"),
    "quantity-true": (item(quantity=True), "items"),
    "quantity-null": (item(quantity=None), "items"),
    "quantity-list": (item(quantity=[2]), "items"),
    "quantity-0": (item(quantity=0), "items"),
    "quantity-100": (item(quantity=100), "items"),
    "quantity-negative": (item(quantity=-1), "items"),
    "quantity-huge": (item(quantity=10**30), "items"),
    "quantity-missing": (order(items=[{"sku": "TM-MILKTEA-L"}]), "items"),
    "sku-number": (item(sku=42), "items"),
    "sku-null": (item(sku=None), "items"),
    "sku-empty": (item(sku=""), "items"),
    "sku-object": (item(sku={"id": 1}), "items"),
    "sku-missing": (order(items=[{"quantity": 1}]), "items"),
    "sku-too-long": (item(sku="S" * 65), "items"),
    "sku-unknown": (item(sku="NO-SUCH-SKU"), "items"),
    "sku-twice": (
        order(
            items=[
                {"sku": "TM-MILKTEA-L", "quantity": 1},
                {"sku": "TM-MILKTEA-L", "quantity": 2},
            ]
        ),
        "items",
    ),
    "unknown-field-in-item": (item(price=1), "items"),
    "unknown-field": (order(discount=2500), "discount"),
    "unknown-fields": (order(status="paid", id=SOME_UUID), "status"),
    "items-string": (order(items="TM-MILKTEA-L"), "items"),
    "items-object": (order(items={"sku": "TM-MILKTEA-L", "quantity": 1}), "items"),
    "items-null": (order(items=None), "items"),
    "items-of-strings": (order(items=["TM-MILKTEA-L"]), "items"),
    "items-of-lists": (order(items=[["TM-MILKTEA-L", 1]]), "items"),
    "items-missing": ({"customer_id": "c-42"}, "items"),
    "items-0": (order(items=[]), "items"),
    "items-21": (
        order(items=[{"sku": f"S-{n}", "quantity": 1} for n in range(21)]),
        "items",
    ),
    "customer-number": (order(customer_id=42), "customer_id"),
    "customer-null": (order(customer_id=None), "customer_id"),
    "customer-list": (order(customer_id=["c-42"]), "customer_id"),
    "customer-missing": ({"items": [{"sku": "TM-MILKTEA-L", "quantity": 1}]}, "customer_id"),
    "coupon-number": (order(coupon_code=12345), "coupon_code"),
    "coupon-object": (order(coupon_code={"code": "X"}), "coupon_code"),
    "coupon-too-long": (order(coupon_code="C" * 65), "coupon_code"),
    "callback-ftp": (order(callback_url="ftp://bot.example.com/hook"), "callback_url"),
    "callback-not-a-url": (order(callback_url="not a url"), "callback_url"),
    "callback-no-host": (order(callback_url="https://"), "callback_url"),
    "callback-javascript": (order(callback_url="javascript:alert(1)"), "callback_url"),
    "callback-number": (order(callback_url=42), "callback_url"),
    "callback-too-long": (
        order(callback_url="https://bot.example.com/" + "a" * 500),
        "callback_url",
    ),
}


@pytest.mark.parametrize(("body", "field"), BAD_ORDERS.values(), ids=BAD_ORDERS.keys())
def test_a_malformed_order_is_invalid_and_names_the_field(
    api: APIClient, body: dict[str, object], field: str
) -> None:
    # given / when
    response = post_json(api, ORDERS, body)
    # then
    result = assert_envelope(response, 400, "invalid")
    assert isinstance(result["fields"], dict)
    assert field in result["fields"]
    nothing_written()


def test_20_lines_and_quantity_99_are_accepted(api: APIClient) -> None:
    # given
    skus = [ProductFactory(sku=f"LINE-{n:02d}").sku for n in range(20)]
    # when
    response = post_json(api, ORDERS, order(items=[{"sku": sku, "quantity": 99} for sku in skus]))
    # then
    assert response.status_code == 202
    assert len(response.json()["items"]) == 20


def test_http_callbacks_are_refused_unless_allowed(api: APIClient, settings) -> None:
    # given
    settings.CALLBACK_ALLOW_HTTP = False
    # when
    response = post_json(api, ORDERS, order(callback_url="http://bot.example.com/hook"))
    # then
    result = assert_envelope(response, 400, "invalid")
    assert "callback_url" in result["fields"]
    nothing_written()


def test_https_callbacks_are_accepted(api: APIClient, settings) -> None:
    # given
    settings.CALLBACK_ALLOW_HTTP = False
    # when
    response = post_json(api, ORDERS, order(callback_url="https://bot.example.com/hook"))
    # then
    assert response.status_code == 202


def test_http_callbacks_pass_where_the_setting_allows_them(api: APIClient, settings) -> None:
    # given
    settings.CALLBACK_ALLOW_HTTP = True
    # when
    response = post_json(api, ORDERS, order(callback_url="http://127.0.0.1:9/hook"))
    # then
    assert response.status_code == 202


# --- Customer ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("customer_id", BAD_CUSTOMER_IDS.values(), ids=BAD_CUSTOMER_IDS.keys())
def test_a_bad_customer_id_in_the_order_list_query_is_invalid(
    api: APIClient, customer_id: str
) -> None:
    # given / when
    response = api.get(ORDERS, {"customer_id": customer_id})
    # then
    result = assert_envelope(response, 400, "invalid")
    assert "customer_id" in result["fields"]


# --- Unknown orders and the list's pages ----------------------------------------------------


def test_an_unknown_order_id_is_a_404_envelope(api: APIClient) -> None:
    # given / when
    got = api.get(f"{ORDERS}{uuid.uuid4()}/")
    cancelled = api.post(f"{ORDERS}{uuid.uuid4()}/cancel/")
    # then
    assert_envelope(got, 404, "not_found")
    assert_envelope(cancelled, 404, "not_found")


def test_a_next_link_of_the_orders_list_works(api: APIClient, chatbot: ApiClient) -> None:
    # given
    tea = ProductFactory()
    orders = [
        post_json(api, ORDERS, order(items=[{"sku": tea.sku, "quantity": 1}]), key=f"k{n}")
        for n in range(52)
    ]
    # when
    first = api.get(ORDERS)
    second = api.get(first.json()["next"])
    # then
    assert second.status_code == 200
    listed = [o["id"] for o in first.json()["results"] + second.json()["results"]]
    assert listed == [o.json()["id"] for o in reversed(orders)]
