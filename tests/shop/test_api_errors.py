"""Shop's refusals on the chatbot API (API keys, the catalogue's filters) answer a 4xx JSON
envelope; the rules every endpoint shares are in tests/infra/test_api_errors.py."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from shop import services as shop_services
from shop.models import ApiClient
from tests.api_errors import (
    CLAIMS,
    ORDERS,
    SLUG,
    SOME_UUID,
    assert_envelope,
    catalogue,
    nothing_written,
    post_json,
    valid_body,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _catalogue(db: None) -> None:
    catalogue()


# Every endpoint of docs/integrator-guide.md (Endpoints), as (method, path).
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
