"""Bad input that every body-taking endpoint of the chatbot API refuses the same way (the
API's glue in infra/api.py: body parsing, size, content type, Idempotency-Key, unknown URLs
and methods, cursors) answers a 4xx JSON envelope `{"error": "<code>", "detail": "<sentence>"}`:
never a 5xx, never HTML (docs/integrator-guide.md, Conventions). Each app's own refusals are in
tests/<app>/test_api_errors.py."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.api_errors import (
    BAD_CUSTOMER_IDS,
    BODY_ENDPOINTS,
    CLAIMS,
    ORDERS,
    SLUG,
    SOME_UUID,
    assert_envelope,
    catalogue,
    nothing_written,
    order,
    post_json,
    post_raw,
    valid_body,
)
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _catalogue(db: None) -> None:
    catalogue()


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
    # then: 400 `invalid`, `fields` naming each problem (docs/integrator-guide.md, Errors
    # and what to do)
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


# --- Customer ids ---------------------------------------------------------------------------


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
    # then: docs/integrator-guide.md lists a body too large under 400 `invalid` with `fields`
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


# --- Cursors of the list endpoints ----------------------------------------------------------


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
