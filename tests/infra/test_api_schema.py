"""The published OpenAPI schema (/api/schema/) and its docs page: every path of
docs/integrator-guide.md (Endpoints) is in it, and the real answers of the API validate
against what it declares."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from django.http import HttpResponse
from rest_framework.test import APIClient

from orders import services as orders_services
from shop.models import ApiClient, Product
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db

OPENAPI_JSON = "application/vnd.oai.openapi+json"

# docs/integrator-guide.md, Endpoints: path -> methods.
CONTRACT_PATHS = {
    "/api/v1/campaigns/": {"get"},
    "/api/v1/campaigns/{slug}/": {"get"},
    "/api/v1/campaigns/{slug}/claims/": {"post"},
    "/api/v1/customers/{customer_id}/coupons/": {"get"},
    "/api/v1/products/": {"get"},
    "/api/v1/orders/": {"get", "post"},
    "/api/v1/orders/{order_id}/": {"get"},
    "/api/v1/orders/{order_id}/cancel/": {"post"},
}


def fetch_schema() -> dict[str, Any]:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT=OPENAPI_JSON)
    assert response.status_code == 200
    return json.loads(response.content)


def as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema objects as JSON Schema: `nullable` becomes a null type, and an object
    with declared properties accepts no others (so a field the schema does not name fails)."""
    if isinstance(node, list):
        return [as_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: as_json_schema(v) for k, v in node.items() if k not in ("nullable", "readOnly")}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def validate(schema: dict[str, Any], path: str, method: str, response: HttpResponse) -> None:
    """The response against what the schema declares for this operation and status code."""
    declared = schema["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in declared, f"{method.upper()} {path} does not declare {status}"
    body_schema = declared[status]["content"]["application/json"]["schema"]
    root = {"components": as_json_schema(schema["components"]), **as_json_schema(body_schema)}
    validator = jsonschema.Draft7Validator(
        root, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(response.json())
    ]
    assert errors == []


def test_the_schema_is_openapi_3_with_every_contract_path(db: None) -> None:
    # given / when
    schema = fetch_schema()
    # then
    assert schema["openapi"].startswith("3.")
    for path, methods in CONTRACT_PATHS.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), path


def test_every_operation_requires_the_bearer_key(db: None) -> None:
    # given / when
    schema = fetch_schema()
    # then
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
    }
    for path, methods in CONTRACT_PATHS.items():
        for method in methods:
            assert {"ApiKey": []} in schema["paths"][path][method]["security"], (method, path)


def test_the_post_operations_declare_the_idempotency_key_header(db: None) -> None:
    # given / when
    schema = fetch_schema()
    # then
    for path in ("/api/v1/orders/", "/api/v1/campaigns/{slug}/claims/"):
        headers = {
            p["name"]: p for p in schema["paths"][path]["post"]["parameters"] if p["in"] == "header"
        }
        assert headers["Idempotency-Key"]["required"] is True


@pytest.mark.parametrize("name", ["OrderOut", "CouponOut", "CampaignOut", "ProductOut"])
def test_every_field_of_an_answer_is_required(db: None, name: str) -> None:
    # given: validation then also fails when the answer lacks a field the schema names
    components = fetch_schema()["components"]["schemas"]
    # when
    component = components[name]
    # then
    assert set(component["required"]) == set(component["properties"])


def test_the_docs_page_is_html(db: None) -> None:
    # given / when
    response = APIClient().get("/api/docs/")
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"/api/schema/" in response.content


def test_the_docs_page_loads_its_assets_from_us_not_a_cdn(db: None) -> None:
    # given
    page = APIClient().get("/api/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page)
    # when
    answers = [APIClient().get(url) for url in assets]
    # then: served by the project itself (WhiteNoise), so the docs work on a closed network
    assert assets
    assert all(url.startswith("/static/") for url in assets), assets
    assert [a.status_code for a in answers] == [200] * len(assets)


# --- Real answers against the schema ---------------------------------------------------------


def test_a_claim_matches_the_schema(api: APIClient) -> None:
    # given
    schema = fetch_schema()
    campaign = CampaignFactory()
    # when
    response = api.post(
        f"/api/v1/campaigns/{campaign.slug}/claims/",
        {"customer_id": "c-42"},
        format="json",
        headers={"Idempotency-Key": "k"},
    )
    # then
    assert response.status_code == 201
    validate(schema, "/api/v1/campaigns/{slug}/claims/", "post", response)


def test_placing_reading_listing_and_cancelling_orders_match_the_schema(
    api: APIClient, chatbot: ApiClient
) -> None:
    # given
    schema = fetch_schema()
    tea = ProductFactory(sku="TM-MILKTEA-L", price=1800)
    coupon = claim(chatbot, CampaignFactory(), "c-42")
    body = {
        "customer_id": "c-42",
        "items": [{"sku": "TM-MILKTEA-L", "quantity": 2}],
        "coupon_code": coupon.code,
        "callback_url": "https://bot.example.com/hook",
    }
    place(chatbot, "c-7", [(tea, 1)])  # one without coupon or callback: nulls
    # when
    placed = api.post("/api/v1/orders/", body, format="json", headers={"Idempotency-Key": "k"})
    replayed = api.post("/api/v1/orders/", body, format="json", headers={"Idempotency-Key": "k"})
    detail = api.get(f"/api/v1/orders/{placed.json()['id']}/")
    listed = api.get("/api/v1/orders/")
    cancelled = api.post(f"/api/v1/orders/{placed.json()['id']}/cancel/")
    # then
    assert (placed.status_code, replayed.status_code) == (202, 200)
    assert (detail.status_code, listed.status_code, cancelled.status_code) == (200, 200, 200)
    assert len(listed.json()["results"]) == 2
    validate(schema, "/api/v1/orders/", "post", placed)
    validate(schema, "/api/v1/orders/", "post", replayed)
    validate(schema, "/api/v1/orders/{order_id}/", "get", detail)
    validate(schema, "/api/v1/orders/", "get", listed)
    validate(schema, "/api/v1/orders/{order_id}/cancel/", "post", cancelled)


def test_a_rejected_order_matches_the_schema(api: APIClient, chatbot: ApiClient) -> None:
    # given: `reason` is set
    schema = fetch_schema()
    gone = ProductFactory(stock=1)
    order = place(chatbot, "c-1", [(gone, 1)])
    Product.objects.filter(pk=gone.pk).update(stock=0)  # sold out while it waited
    orders_services.reservations_take_batch(campaign_id=None, limit=10)
    # when
    response = api.get(f"/api/v1/orders/{order.public_id}/")
    # then
    assert response.json()["reason"] == "sold_out"
    validate(schema, "/api/v1/orders/{order_id}/", "get", response)


def test_campaigns_coupons_and_products_match_the_schema(
    api: APIClient, chatbot: ApiClient
) -> None:
    # given
    schema = fetch_schema()
    campaign = CampaignFactory()
    claim(chatbot, campaign, "c-1")
    ProductFactory()
    # when
    campaigns = api.get("/api/v1/campaigns/")
    detail = api.get(f"/api/v1/campaigns/{campaign.slug}/")
    coupons = api.get("/api/v1/customers/c-1/coupons/")
    products = api.get("/api/v1/products/")
    # then
    validate(schema, "/api/v1/campaigns/", "get", campaigns)
    validate(schema, "/api/v1/campaigns/{slug}/", "get", detail)
    validate(schema, "/api/v1/customers/{customer_id}/coupons/", "get", coupons)
    validate(schema, "/api/v1/products/", "get", products)


CLAIMS = "/api/v1/campaigns/{slug}/claims/"
ORDER = "/api/v1/orders/{order_id}/"
SOME_UUID = "6f1c1e7e-6a39-4c4e-9f0e-1f7c2b0c9d11"


@pytest.mark.parametrize(
    "case",
    [
        ("post", "/api/v1/campaigns/spring/claims/", CLAIMS, {"customer_id": "c-1"}, 409),
        ("post", "/api/v1/campaigns/nope/claims/", CLAIMS, {"customer_id": "c-1"}, 404),
        ("post", "/api/v1/campaigns/spring/claims/", CLAIMS, {"customer_id": 42}, 400),
        ("post", "/api/v1/orders/", "/api/v1/orders/", {"customer_id": "c-1", "items": []}, 400),
        ("get", f"/api/v1/orders/{SOME_UUID}/", ORDER, None, 404),
        ("post", f"/api/v1/orders/{SOME_UUID}/cancel/", f"{ORDER}cancel/", None, 404),
        ("get", "/api/v1/campaigns/nope/", "/api/v1/campaigns/{slug}/", None, 404),
        ("get", "/api/v1/products/?store=not%20a%20slug", "/api/v1/products/", None, 400),
    ],
    ids=[
        "claim-409",
        "claim-404",
        "claim-400",
        "order-400",
        "order-404",
        "cancel-404",
        "campaign-404",
        "products-400",
    ],
)
def test_errors_match_the_schema(
    api: APIClient, chatbot: ApiClient, case: tuple[str, str, str, object, int]
) -> None:
    # given
    method, path, schema_path, body, status = case
    schema = fetch_schema()
    claim(chatbot, CampaignFactory(slug="spring"), "c-1")  # the limit is one
    # when
    response = getattr(api, method)(path, body, format="json", headers={"Idempotency-Key": "k"})
    # then
    assert response.status_code == status
    assert response.json()["error"]
    validate(schema, schema_path, method, response)
