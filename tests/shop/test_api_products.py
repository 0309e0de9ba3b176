"""GET /api/v1/products/ (docs/integrator-guide.md, The catalogue): search, store filter,
cursor pages."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories.shop import ProductFactory, StoreFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/products/"


def skus(response) -> list[str]:
    return [p["sku"] for p in response.json()["results"]]


def test_a_product_has_exactly_the_contract_fields(api: APIClient) -> None:
    # given
    store = StoreFactory(slug="teahouse")
    ProductFactory(sku="TM-MILKTEA-L", name="Milk tea, large", store=store, price=1800, stock=3)
    # when
    response = api.get(URL)
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["results"] == [
        {
            "sku": "TM-MILKTEA-L",
            "name": "Milk tea, large",
            "store": "teahouse",
            "price": 1800,
            "currency": "CNY",
            "in_stock": True,
        }
    ]


def test_in_stock_is_false_once_no_unit_is_left(api: APIClient) -> None:
    # given
    ProductFactory(sku="A-1", stock=0)
    ProductFactory(sku="A-2", stock=1)
    # when
    response = api.get(URL)
    # then
    assert {p["sku"]: p["in_stock"] for p in response.json()["results"]} == {
        "A-1": False,
        "A-2": True,
    }


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("milk", ["TM-MILKTEA-L", "XX-SHAKE"]),  # in the name, any case
        ("cf-la", ["CF-LATTE"]),  # part of the SKU
        ("LATTE", ["CF-LATTE"]),
        ("nothing-like-it", []),
        ("", ["CF-LATTE", "TM-MILKTEA-L", "XX-SHAKE"]),
    ],
)
def test_search_matches_part_of_the_name_or_the_sku(
    api: APIClient, search: str, expected: list[str]
) -> None:
    # given
    ProductFactory(sku="TM-MILKTEA-L", name="Milk tea")
    ProductFactory(sku="CF-LATTE", name="Latte")
    ProductFactory(sku="XX-SHAKE", name="Green MILK shake")
    # when
    response = api.get(URL, {"search": search})
    # then
    assert response.status_code == 200
    assert skus(response) == expected


def test_store_filter_keeps_that_stores_products_only(api: APIClient) -> None:
    # given
    tea, coffee = StoreFactory(slug="teahouse"), StoreFactory(slug="coffee-bar")
    ProductFactory(sku="T-1", store=tea)
    ProductFactory(sku="T-2", store=tea)
    ProductFactory(sku="C-1", store=coffee)
    # when
    response = api.get(URL, {"store": "teahouse"})
    # then
    assert response.status_code == 200
    assert skus(response) == ["T-1", "T-2"]
    assert {p["store"] for p in response.json()["results"]} == {"teahouse"}


def test_search_and_store_combine(api: APIClient) -> None:
    # given
    tea, coffee = StoreFactory(slug="teahouse"), StoreFactory(slug="coffee-bar")
    ProductFactory(sku="T-LATTE", name="Tea latte", store=tea)
    ProductFactory(sku="T-GREEN", name="Green tea", store=tea)
    ProductFactory(sku="C-LATTE", name="Latte", store=coffee)
    # when
    response = api.get(URL, {"search": "latte", "store": "teahouse"})
    # then
    assert skus(response) == ["T-LATTE"]


def test_an_unknown_store_is_an_empty_page(api: APIClient) -> None:
    # given
    ProductFactory(sku="T-1")
    # when
    response = api.get(URL, {"store": "no-such-store"})
    # then
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_pages_by_cursor_and_the_next_link_works(api: APIClient) -> None:
    # given
    store = StoreFactory(slug="big-store")
    made = sorted(p.sku for p in ProductFactory.create_batch(55, store=store))
    # when
    first = api.get(URL)
    second = api.get(first.json()["next"])
    # then
    assert first.status_code == 200
    assert second.status_code == 200
    assert set(first.json()) == {"next", "previous", "results"}
    assert len(first.json()["results"]) == 50
    assert first.json()["previous"] is None
    assert "cursor=" in first.json()["next"]
    assert second.json()["next"] is None
    assert second.json()["previous"] is not None
    assert skus(first) + skus(second) == made


def test_the_next_link_keeps_the_filters(api: APIClient) -> None:
    # given
    tea, coffee = StoreFactory(slug="teahouse"), StoreFactory(slug="coffee-bar")
    ProductFactory.create_batch(52, store=tea)
    ProductFactory.create_batch(3, store=coffee)
    # when
    first = api.get(URL, {"store": "teahouse"})
    second = api.get(first.json()["next"])
    # then
    assert len(first.json()["results"]) == 50
    assert len(second.json()["results"]) == 2
    assert {p["store"] for p in second.json()["results"]} == {"teahouse"}


def test_a_key_is_required(db: None) -> None:
    # given
    ProductFactory()
    # when
    response = APIClient().get(URL)
    # then
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == "unauthorized"
    assert "results" not in response.json()
