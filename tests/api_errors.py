"""What the API error tests share (tests/infra/test_api_errors.py for the rules every endpoint
keeps, and test_api_errors.py under tests/shop, tests/coupons and tests/orders for each app's
own endpoints): the paths, the request builders, and the envelope every refusal answers in,
`{"error": "<code>", "detail": "<sentence>"}`: never a 5xx, never HTML
(docs/integrator-guide.md, Conventions)."""

from __future__ import annotations

import json

from django.http import HttpResponse
from rest_framework.test import APIClient

from coupons.models import Coupon
from orders.models import Order
from tests.factories.coupons import CampaignFactory
from tests.factories.shop import ProductFactory

SLUG = "spring"
ORDERS = "/api/v1/orders/"
CLAIMS = f"/api/v1/campaigns/{SLUG}/claims/"
SOME_UUID = "6f1c1e7e-6a39-4c4e-9f0e-1f7c2b0c9d11"
BODY_ENDPOINTS = [CLAIMS, ORDERS]


def catalogue() -> None:
    """The campaign and products the requests of these tests name."""
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
