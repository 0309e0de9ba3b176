"""Bad input on every endpoint of the chatbot API answers a 4xx JSON envelope
`{"error": "<code>", "detail": "<sentence>"}`: never a 5xx, never HTML (API.md, conventions)."""

from __future__ import annotations

import base64
import json
import uuid
from urllib.parse import quote

import psycopg
import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import override_settings
from rest_framework.test import APIClient

from coupons.models import Coupon
from coupons.selectors import campaign_coupons_issued
from orders.models import Order
from shop import services as shop_services
from shop.models import ApiClient
from tests.conftest import database_url_of_tests
from tests.factories.coupons import CampaignFactory
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db

SLUG = "spring"
ORDERS = "/api/v1/orders/"
CLAIMS = f"/api/v1/campaigns/{SLUG}/claims/"
SOME_UUID = "6f1c1e7e-6a39-4c4e-9f0e-1f7c2b0c9d11"

# Every endpoint of API.md section 1, as (method, path).
ENDPOINTS = [
    ("get", "/api/v1/campaigns/"),
    ("get", f"/api/v1/campaigns/{SLUG}/"),
    ("post", CLAIMS),
    ("get", "/api/v1/customers/c-1/coupons/"),
    ("get", "/api/v1/products/"),
    ("post", ORDERS),
    ("get", ORDERS),
    ("get", f"{ORDERS}{SOME_UUID}/"),
    ("post", f"{ORDERS}{SOME_UUID}/cancel/"),
]
BODY_ENDPOINTS = [CLAIMS, ORDERS]


@pytest.fixture(autouse=True)
def _catalogue(db: None) -> None:
    CampaignFactory(slug=SLUG)
    ProductFactory(sku="TM-MILKTEA-L", price=1800)
    ProductFactory(sku="TM-GREEN-M", price=1200)


def assert_envelope(response: HttpResponse, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert isinstance(body, dict)
    assert body["error"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert "Traceback" not in response.content.decode()
    return body


def post_raw(
    api: APIClient,
    path: str,
    body: bytes | str,
    content_type: str = "application/json",
    key: str | None = "key-1",
) -> HttpResponse:
    extra = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return api.generic("POST", path, body, content_type=content_type, **extra)


def post_json(api: APIClient, path: str, body: object, key: str | None = "key-1") -> HttpResponse:
    return post_raw(api, path, json.dumps(body), key=key)


def order(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "customer_id": "c-42",
        "items": [{"sku": "TM-MILKTEA-L", "quantity": 2}],
    }
    return {**base, **changes}


def item(**changes: object) -> dict[str, object]:
    return order(items=[{"sku": "TM-MILKTEA-L", "quantity": 2, **changes}])


def valid_body(path: str, **changes: object) -> dict[str, object]:
    return order(**changes) if path == ORDERS else {"customer_id": "c-42", **changes}


def nothing_written() -> None:
    assert Order.objects.count() == 0
    assert Coupon.objects.count() == 0


# --- The body: not JSON, not an object ------------------------------------------------------

MALFORMED = {
    "truncated": b'{"customer_id": "c-42"',
    "single-quotes": b"{'customer_id': 'c-42'}",
    "trailing-comma": b'{"customer_id": "c-42",}',
    "not-utf8": b'{"customer_id": "\xff\xfe"}',
    "nan": b'{"customer_id": "c-42", "items": NaN}',
    "infinity": b'{"customer_id": "c-42", "items": [{"sku": "X", "quantity": Infinity}]}',
    "garbage": b"customer_id=c-42",
    "deeply-nested": b'{"customer_id": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "deeply-nested-unclosed": b"[" * 10000,
    "huge-number": b'{"customer_id": "c-42", "items": [{"sku": "X", "quantity": 1'
    + b"0" * 5000
    + b"}]}",
}


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_json_is_invalid(api: APIClient, path: str, body: bytes) -> None:
    # given / when
    response = post_raw(api, path, body)
    # then: API.md, "400 invalid with fields for anything malformed"
    assert_envelope(response, 400, "invalid")
    assert "body" in response.json()["fields"]
    nothing_written()


NOT_AN_OBJECT = {
    "array": [{"customer_id": "c-42"}],
    "empty-array": [],
    "string": "c-42",
    "number": 42,
    "true": True,
    "null": None,
}


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
@pytest.mark.parametrize("body", NOT_AN_OBJECT.values(), ids=NOT_AN_OBJECT.keys())
def test_a_body_that_is_not_a_json_object_is_invalid(
    api: APIClient, path: str, body: object
) -> None:
    # given / when
    response = post_json(api, path, body)
    # then
    result = assert_envelope(response, 400, "invalid")
    assert result["fields"]
    nothing_written()


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_an_empty_body_is_invalid(api: APIClient, path: str) -> None:
    # given / when
    response = post_raw(api, path, b"")
    # then
    result = assert_envelope(response, 400, "invalid")
    assert "customer_id" in result["fields"]


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

BAD_CUSTOMER_IDS = {
    "empty": "",
    "65-chars": "c" * 65,
    "inner-space": "c 42",
    "leading-space": " c-42",
    "trailing-space": "c-42 ",
    "trailing-newline": "c-42\n",
    "tab": "c\t42",
    "unicode": "客户42",
    "accent": "clément",
    "dot-dot-slash": "../",
    "slash": "c/42",
    "nul": "c\x0042",
    "at": "c@42",
}


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
@pytest.mark.parametrize("customer_id", BAD_CUSTOMER_IDS.values(), ids=BAD_CUSTOMER_IDS.keys())
def test_a_bad_customer_id_in_a_body_is_invalid(
    api: APIClient, path: str, customer_id: str
) -> None:
    # given / when
    response = post_json(api, path, valid_body(path, customer_id=customer_id))
    # then
    result = assert_envelope(response, 400, "invalid")
    assert "customer_id" in result["fields"]
    nothing_written()


@pytest.mark.parametrize("customer_id", BAD_CUSTOMER_IDS.values(), ids=BAD_CUSTOMER_IDS.keys())
def test_a_bad_customer_id_in_the_order_list_query_is_invalid(
    api: APIClient, customer_id: str
) -> None:
    # given / when
    response = api.get(ORDERS, {"customer_id": customer_id})
    # then
    result = assert_envelope(response, 400, "invalid")
    assert "customer_id" in result["fields"]


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


@pytest.mark.parametrize("customer_id", ["c-42", "a", "A.b:c_d-9", "c" * 64])
def test_good_customer_ids_are_accepted(api: APIClient, customer_id: str) -> None:
    # given / when
    claimed = post_json(api, CLAIMS, {"customer_id": customer_id}, key="k-claim")
    placed = post_json(api, ORDERS, order(customer_id=customer_id), key="k-order")
    listed = api.get(f"/api/v1/customers/{customer_id}/coupons/")
    # then
    assert claimed.status_code == 201
    assert placed.status_code == 202
    assert listed.status_code == 200
    assert placed.json()["customer_id"] == customer_id
    assert [c["customer_id"] for c in listed.json()["results"]] == [customer_id]


# --- Idempotency-Key ------------------------------------------------------------------------


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
@pytest.mark.parametrize(
    "key", [None, "", "k" * 256, "k\x00y"], ids=["missing", "empty", "256-chars", "nul"]
)
def test_the_idempotency_key_is_required(api: APIClient, path: str, key: str | None) -> None:
    # given / when
    response = post_json(api, path, valid_body(path), key=key)
    # then
    result = assert_envelope(response, 400, "invalid")
    assert "Idempotency-Key" in result["fields"]
    nothing_written()


# --- Size -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_a_body_over_16_kib_is_invalid(api: APIClient, path: str) -> None:
    # given
    body = json.dumps({"customer_id": "c-42", "pad": "x" * (16 * 1024)})
    # when
    response = post_raw(api, path, body)
    # then: API.md lists an oversized body under 400 `invalid` with `fields`
    assert_envelope(response, 400, "invalid")
    assert "body" in response.json()["fields"]
    nothing_written()


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_a_body_just_under_the_cap_is_read(api: APIClient, path: str) -> None:
    # given: under 16 KiB, so what answers is the unknown field, not the size
    body = json.dumps({"customer_id": "c-42", "pad": "x" * (15 * 1024)})
    # when
    response = post_raw(api, path, body)
    # then
    result = assert_envelope(response, 400, "invalid")
    assert "pad" in result["fields"]


# --- Content type ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", '{"customer_id": "c-42"}'),
        ("application/x-www-form-urlencoded", "customer_id=c-42"),
        (
            "multipart/form-data; boundary=XX",
            '--XX\r\nContent-Disposition: form-data; name="customer_id"\r\n\r\nc-42\r\n--XX--\r\n',
        ),
        ("application/xml", "<customer_id>c-42</customer_id>"),
    ],
    ids=["text", "form", "multipart", "xml"],
)
def test_a_body_that_is_not_json_is_unsupported(
    api: APIClient, path: str, content_type: str, body: str
) -> None:
    # given / when
    response = post_raw(api, path, body, content_type=content_type)
    # then
    assert_envelope(response, 415, "unsupported_media_type")
    nothing_written()


# --- Authentication -------------------------------------------------------------------------


def revoked(chatbot: ApiClient) -> str:
    issued = shop_services.api_key_issue(client_id=chatbot.pk)
    shop_services.api_key_revoke(key_id=issued.key.pk)
    return f"Bearer {issued.raw}"


def of_inactive_client(chatbot: ApiClient) -> str:
    raw = shop_services.api_key_issue(client_id=chatbot.pk).raw
    ApiClient.objects.filter(pk=chatbot.pk).update(is_active=False)
    return f"Bearer {raw}"


def valid_key_as_basic(chatbot: ApiClient) -> str:
    raw = shop_services.api_key_issue(client_id=chatbot.pk).raw
    return f"Basic {raw}"


AUTHORIZATIONS = {
    "missing": lambda _: None,
    "wrong-key": lambda _: "Bearer cop_not-a-key-that-exists",
    "revoked-key": revoked,
    "inactive-client": of_inactive_client,
    "basic": lambda _: "Basic Y2hhdGJvdDpzZWNyZXQ=",
    "valid-key-as-basic": valid_key_as_basic,
    "bearer-without-key": lambda _: "Bearer",
    "bearer-two-words": lambda _: "Bearer a b",
    "not-ascii": lambda _: "Bearer clé",
    "empty": lambda _: "",
}


@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m}-{p}" for m, p in ENDPOINTS])
@pytest.mark.parametrize("make", AUTHORIZATIONS.values(), ids=AUTHORIZATIONS.keys())
def test_without_a_valid_key_every_endpoint_is_401(
    chatbot: ApiClient, method: str, path: str, make
) -> None:
    # given
    header = make(chatbot)
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    # when
    post = method == "post"
    response = post_json(client, path, valid_body(path)) if post else client.get(path)
    # then
    assert_envelope(response, 401, "unauthorized")
    assert response["WWW-Authenticate"].startswith("Bearer")
    nothing_written()


def test_a_revoked_key_stops_working_while_the_others_still_do(chatbot: ApiClient) -> None:
    # given: two keys for one client (rotation)
    old = shop_services.api_key_issue(client_id=chatbot.pk)
    new = shop_services.api_key_issue(client_id=chatbot.pk)
    shop_services.api_key_revoke(key_id=old.key.pk)
    # when
    with_old = APIClient(HTTP_AUTHORIZATION=f"Bearer {old.raw}").get("/api/v1/campaigns/")
    with_new = APIClient(HTTP_AUTHORIZATION=f"Bearer {new.raw}").get("/api/v1/campaigns/")
    # then
    assert_envelope(with_old, 401, "unauthorized")
    assert with_new.status_code == 200


# --- URLs and methods -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/",
        "/api/v1/",
        "/api/v1/nope/",
        "/api/v2/orders/",
        "/api/v1/orders/not-a-uuid/",
        "/api/v1/orders/not-a-uuid/cancel/",
        f"/api/v1/orders/{SOME_UUID}x/",
        "/api/v1/orders/123/",
        "/api/v1/campaigns/not%20a%20slug/",
        "/api/v1/campaigns/spring/claims/x/",
        "/api/v1/orders/0/",
        "/api/v1/orders/-1/",
        "/api/v1/orders/..%2F..%2Fetc%2Fpasswd/",
        "/api/v1/campaigns/%00/",
        "/api/v1/unknown-endpoint",
        "/api",
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_an_unknown_url_under_api_is_a_404_envelope(
    api: APIClient, path: str, method: str, debug: bool
) -> None:
    # given: DEBUG on is `make run`, where Django would answer its HTML debug page
    with override_settings(DEBUG=debug):
        # when
        response = getattr(api, method)(path, HTTP_IDEMPOTENCY_KEY="k")
    # then
    body = assert_envelope(response, 404, "not_found")
    assert set(body) == {"error", "detail"}
    assert b"urlpatterns" not in response.content
    assert b"<html" not in response.content.lower()


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_path_without_its_trailing_slash_is_a_json_404(api: APIClient, method: str) -> None:
    # given / when: no HTML redirect that would drop a POST body
    response = getattr(api, method)("/api/v1/orders", HTTP_IDEMPOTENCY_KEY="k")
    # then
    assert_envelope(response, 404, "not_found")


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_an_unknown_url_is_a_404_envelope_without_a_key_too(db: None, debug: bool) -> None:
    # given / when
    with override_settings(DEBUG=debug):
        response = APIClient().get("/api/v1/nope/")
    # then
    assert_envelope(response, 404, "not_found")


def test_an_unknown_order_id_is_a_404_envelope(api: APIClient) -> None:
    # given / when
    got = api.get(f"{ORDERS}{uuid.uuid4()}/")
    cancelled = api.post(f"{ORDERS}{uuid.uuid4()}/cancel/")
    # then
    assert_envelope(got, 404, "not_found")
    assert_envelope(cancelled, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", ORDERS),
        ("put", ORDERS),
        ("patch", ORDERS),
        ("delete", f"{ORDERS}{SOME_UUID}/"),
        ("post", f"{ORDERS}{SOME_UUID}/"),
        ("get", f"{ORDERS}{SOME_UUID}/cancel/"),
        ("post", "/api/v1/campaigns/"),
        ("delete", f"/api/v1/campaigns/{SLUG}/"),
        ("get", CLAIMS),
        ("put", CLAIMS),
        ("post", "/api/v1/products/"),
        ("post", "/api/v1/customers/c-1/coupons/"),
    ],
)
def test_a_wrong_method_is_a_405_envelope(api: APIClient, method: str, path: str) -> None:
    # given / when
    response = getattr(api, method)(path, HTTP_IDEMPOTENCY_KEY="k")
    # then
    assert_envelope(response, 405, "method_not_allowed")
    nothing_written()


# --- Query strings of the list endpoints ----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"store": "not a slug!"}, "store"),
        ({"store": "s" * 65}, "store"),
        ({"search": "x" * 101}, "search"),
    ],
    ids=["store-not-a-slug", "store-too-long", "search-too-long"],
)
def test_bad_product_filters_are_invalid(api: APIClient, query: dict[str, str], field: str) -> None:
    # given / when
    response = api.get("/api/v1/products/", query)
    # then
    result = assert_envelope(response, 400, "invalid")
    assert field in result["fields"]


def cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


BAD_CURSORS = {
    "not-base64": "garbage",
    "bad-offset": cursor("o=x&r=0&p=1"),
    "negative-offset": cursor("o=-1"),
    "nul-position": cursor("p=\x00"),
}
# The orders' cursor position is a pk: text there reached the database (500).
BAD_ORDER_CURSORS = {
    "text-position": cursor("p=x"),
    "negative-position": cursor("r=1&p=-5"),
    "float-position": cursor("p=1.5"),
}
CURSOR_CASES = [
    pytest.param(path, value, id=f"{name}-{path}")
    for path in ("/api/v1/products/", ORDERS)
    for name, value in BAD_CURSORS.items()
] + [
    pytest.param(ORDERS, value, id=f"{name}-{ORDERS}") for name, value in BAD_ORDER_CURSORS.items()
]


@pytest.mark.parametrize(("path", "value"), CURSOR_CASES)
def test_a_bad_cursor_is_invalid_input(api: APIClient, path: str, value: str) -> None:
    # given: a forged or garbled cursor is bad input, not a missing page
    ProductFactory.create_batch(3)
    # when
    response = api.get(path, {"cursor": value})
    # then
    assert_envelope(response, 400, "invalid")
    assert "cursor" in response.json()["fields"]


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
