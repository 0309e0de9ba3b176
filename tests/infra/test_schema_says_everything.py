"""The schema says everything the service does (docs/compatibility.md): the headers it sends,
the limits it enforces, and for every status of every operation the `error` codes it can
carry, including those infra/api.py and the front door (infra/server.py) answer before or
around the views. Real answers are checked against it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import RequestFactory, override_settings
from gunicorn.http import errors as http_errors
from rest_framework.test import APIClient

from devtools.schema_diff import CURRENT, load
from infra import api as infra_api
from infra.contract import CUSTOMER_ID_RE
from infra.server import _error_status
from orders.api.serializers import OrderItemIn, OrderPlaceIn
from shop import services as shop_services
from shop.models import RateLimit
from tests.factories.shop import ProductFactory

Schema = dict[str, Any]
METHODS = ("get", "post", "put", "patch", "delete")
ORDERS = "/api/v1/orders/"


@pytest.fixture(scope="module")
def schema() -> Schema:
    return load(CURRENT)  # what the code generates: tests/infra/test_schema_file.py


def operations(schema: Schema) -> list[tuple[str, str, Schema]]:
    return [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def resolve(schema: Schema, node: Schema) -> Schema:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def error_codes(schema: Schema, response: Schema) -> set[str]:
    body = resolve(schema, response["content"]["application/json"]["schema"])
    return set(resolve(schema, body["properties"]["error"])["enum"])


def codes_at(schema: Schema, path: str, method: str, status: int) -> set[str]:
    return error_codes(schema, schema["paths"][path][method]["responses"][str(status)])


# --- headers ---------------------------------------------------------------------------------


def test_every_answer_declares_its_request_id_and_every_429_its_retry_after(
    schema: Schema,
) -> None:
    # given
    missing = []
    # when
    for path, method, op in operations(schema):
        for status, response in op["responses"].items():
            headers = response.get("headers", {})
            if "X-Request-ID" not in headers:
                missing.append(f"{method} {path} {status}: X-Request-ID")
            if status == "429" and not headers.get("Retry-After", {}).get("required"):
                missing.append(f"{method} {path} 429: Retry-After")
            if status == "401" and not headers.get("WWW-Authenticate", {}).get("required"):
                missing.append(f"{method} {path} 401: WWW-Authenticate")
    # then
    assert missing == []


def test_a_placed_order_declares_its_location(schema: Schema) -> None:
    # given / when
    responses = schema["paths"][ORDERS]["post"]["responses"]
    # then: the first answer and a replay's
    for status in ("202", "200"):
        assert responses[status]["headers"]["Location"]["required"] is True


# --- limits ----------------------------------------------------------------------------------


def field_limits(field: Any) -> dict[str, object]:
    return {"min": field.min_value, "max": field.max_value}


def test_the_limits_the_serializers_enforce_are_constraints(schema: Schema) -> None:
    # given
    components = schema["components"]["schemas"]
    place_in = components["OrderPlaceInRequest"]["properties"]
    quantity = components["OrderItemInRequest"]["properties"]["quantity"]
    items = OrderPlaceIn().fields["items"]
    # when / then
    assert (place_in["items"]["minItems"], place_in["items"]["maxItems"]) == (
        items.min_length,
        items.max_length,
    )
    assert {"min": quantity["minimum"], "max": quantity["maximum"]} == field_limits(
        OrderItemIn().fields["quantity"]
    )
    assert (place_in["items"]["minItems"], place_in["items"]["maxItems"]) == (1, 20)
    assert (quantity["minimum"], quantity["maximum"]) == (1, 99)


def test_every_idempotency_key_is_1_to_255_characters(schema: Schema) -> None:
    # given
    keys = [
        p["schema"]
        for _, _, op in operations(schema)
        for p in op.get("parameters", [])
        if p["name"] == "Idempotency-Key"
    ]
    # then
    assert len(keys) == 2
    assert all((k["minLength"], k["maxLength"]) == (1, 255) for k in keys)


def test_every_customer_id_carries_the_contracts_pattern(schema: Schema) -> None:
    # given: in bodies, paths and queries
    found = [
        schema["components"]["schemas"][name]["properties"]["customer_id"]["pattern"]
        for name in ("OrderPlaceInRequest", "CouponClaimInRequest")
    ]
    found += [
        p["schema"]["pattern"]
        for _, _, op in operations(schema)
        for p in op.get("parameters", [])
        if p["name"] == "customer_id"
    ]
    # then
    assert len(found) == 4
    assert set(found) == {CUSTOMER_ID_RE.pattern}


# --- error codes -----------------------------------------------------------------------------


def test_every_error_status_is_an_enum_of_the_codes_it_describes(schema: Schema) -> None:
    # given
    problems = []
    # when
    for path, method, op in operations(schema):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            codes = error_codes(schema, response)
            examples = {
                e["value"]["error"]
                for e in response["content"]["application/json"].get("examples", {}).values()
            }
            undescribed = [c for c in codes if f"`{c}`:" not in response["description"]]
            if not examples <= codes or undescribed:
                problems.append(f"{method} {path} {status}: {codes} {examples} {undescribed}")
    # then
    assert problems == []


def handler_answers() -> set[tuple[int, str]]:
    """(status, code) of every answer infra/api.py renders outside the views, and of the DRF
    exceptions it names (405 is left out: a declared operation takes its method)."""
    request = RequestFactory().get("/api/v1/orders/")
    rendered = [
        infra_api.handler400(request),
        infra_api.handler403(request),
        infra_api.handler404(request),
        infra_api.handler500(request),
    ]
    answers = {(r.status_code, json.loads(r.content)["error"]) for r in rendered}
    answers |= {
        (cls.status_code, code)
        for cls, code in infra_api._DRF_CODES.items()
        if code != "method_not_allowed"
    }
    return answers


def front_door_answers() -> set[tuple[int, str]]:
    """(status, code) of each refusal the front door (infra/server.py) makes itself."""
    refusals = [
        http_errors.LimitRequestHeaders("too large"),
        http_errors.LimitRequestLine(9000, 4094),
        http_errors.UnsupportedTransferCoding("gzip"),
        http_errors.ForbiddenProxyRequest("10.0.0.1"),
        http_errors.InvalidRequestLine("nonsense"),
        ValueError("not HTTP"),
        RuntimeError("a bug"),
    ]
    answers = {_error_status(exc)[:2] for exc in refusals}
    return answers | {(400, "invalid"), (429, "overloaded")}  # a body too large; at capacity


@pytest.mark.parametrize("source", [handler_answers, front_door_answers], ids=lambda f: f.__name__)
def test_every_operation_lists_the_codes_answered_around_the_views(
    schema: Schema, source: Any
) -> None:
    # given
    answers = source()
    missing = []
    # when
    for path, method, op in operations(schema):
        for status, code in answers:
            if str(status) not in op["responses"] or code not in codes_at(
                schema, path, method, status
            ):
                missing.append(f"{method} {path} {status} {code}")
    # then
    assert missing == []


# --- real answers ----------------------------------------------------------------------------


def assert_as_declared(schema: Schema, path: str, method: str, response: Any) -> None:
    """The status is declared, each header declared required (and the request id) is sent,
    and an error's code is one its status lists."""
    declared = schema["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in declared, f"{method} {path} does not declare {status}"
    required = [n for n, h in declared[status].get("headers", {}).items() if h.get("required")]
    for name in [*required, "X-Request-ID"]:
        assert response.has_header(name), f"{method} {path} {status}: no {name}"
    if response.status_code >= 400:
        assert response.json()["error"] in codes_at(schema, path, method, response.status_code)


def place_body(sku: str) -> dict[str, object]:
    return {"customer_id": "c-42", "items": [{"sku": sku, "quantity": 1}]}


@pytest.mark.django_db
def test_placing_and_replaying_answer_as_declared(schema: Schema, api: APIClient) -> None:
    # given
    tea = ProductFactory()
    key = {"HTTP_IDEMPOTENCY_KEY": "k-1"}
    # when
    placed = api.post(ORDERS, place_body(tea.sku), format="json", **key)
    replayed = api.post(ORDERS, place_body(tea.sku), format="json", **key)
    # then
    assert (placed.status_code, replayed.status_code) == (202, 200)
    assert_as_declared(schema, ORDERS, "post", placed)
    assert_as_declared(schema, ORDERS, "post", replayed)
    assert placed["Location"] == f"/api/v1/orders/{placed.json()['id']}/"


@pytest.mark.django_db
def test_refusals_around_the_views_answer_as_declared(schema: Schema, api: APIClient) -> None:
    # given
    nobody = APIClient()
    # when
    not_acceptable = api.get("/api/v1/campaigns/", HTTP_ACCEPT="text/html")
    unauthorized = nobody.get("/api/v1/campaigns/")
    with override_settings(ALLOWED_HOSTS=["api.example.com"]):
        bad_request = api.get("/api/v1/campaigns/", HTTP_HOST="elsewhere.example.com")
    # then
    assert (not_acceptable.status_code, unauthorized.status_code) == (406, 401)
    assert bad_request.json()["error"] == "bad_request"
    for response in (not_acceptable, unauthorized, bad_request):
        assert_as_declared(schema, "/api/v1/campaigns/", "get", response)


@pytest.mark.django_db
def test_a_429_answers_as_declared(schema: Schema, api: APIClient) -> None:
    # given: one request, then one a minute
    shop_services.rate_limit_set(
        scope=RateLimit.Scope.CLIENT_REQUESTS, per_second=1 / 60, burst=1, actor="test"
    )
    tea = ProductFactory()
    # when
    answers = [
        api.post(ORDERS, place_body(tea.sku), format="json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)
        for _ in range(2)
    ]
    # then
    assert [a.status_code for a in answers] == [202, 429]
    assert_as_declared(schema, ORDERS, "post", answers[1])
