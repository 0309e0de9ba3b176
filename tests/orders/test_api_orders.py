"""POST/GET /api/v1/orders/, GET /api/v1/orders/{id}/, POST /api/v1/orders/{id}/cancel/
(docs/integrator-guide.md, Placing an order)."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from rest_framework.test import APIClient

from coupons.models import Coupon
from orders import services as orders_services
from orders.models import Order
from shop.models import ApiClient, Product
from tests.conftest import api_for
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ApiClientFactory, ProductFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/orders/"

# docs/integrator-guide.md, Placing an order: the order.
ORDER_FIELDS = {
    "id",
    "status",
    "reason",
    "customer_id",
    "items",
    "subtotal",
    "discount",
    "payable",
    "livemode",
    "currency",
    "coupon_code",
    "created_at",
    "updated_at",
    "queue",
}


def post_order(api: APIClient, body: object, key: str = "key-1"):
    return api.post(URL, body, format="json", headers={"Idempotency-Key": key})


def assert_error(response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


def when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"{value} has no timezone"
    return parsed


@pytest.fixture
def tea(db: None) -> Product:
    return ProductFactory(sku="TM-MILKTEA-L", price=1800, stock=100)


@pytest.mark.parametrize(
    "amounts",
    [(2, 3600, 2500), (1, 1800, 1800)],
    ids=["capped-by-max-discount", "capped-by-subtotal"],
)
def test_placing_answers_202_with_the_order_as_the_contract_shows(
    api: APIClient, chatbot: ApiClient, tea: Product, amounts: tuple[int, int, int]
) -> None:
    # given
    quantity, subtotal, discount = amounts
    coupon = claim(chatbot, CampaignFactory(max_discount=2500), "c-42")
    body = {
        "customer_id": "c-42",
        "items": [{"sku": "TM-MILKTEA-L", "quantity": quantity}],
        "coupon_code": coupon.code,
    }
    # when
    response = post_order(api, body)
    # then
    assert response.status_code == 202
    assert response["Content-Type"].startswith("application/json")
    order = Order.objects.get()
    got = response.json()
    assert response["Location"].endswith(f"/api/v1/orders/{order.public_id}/")
    assert set(got) == ORDER_FIELDS
    assert got["id"] == str(order.public_id)
    assert got["status"] == "received"
    assert got["reason"] is None
    assert got["customer_id"] == "c-42"
    assert got["items"] == [{"sku": "TM-MILKTEA-L", "quantity": quantity, "unit_price": 1800}]
    assert got["subtotal"] == subtotal
    assert got["discount"] == discount
    assert got["payable"] == subtotal - discount
    assert got["currency"] == "CNY"
    assert got["coupon_code"] == coupon.code
    assert when(got["created_at"]) == order.created_at
    assert when(got["updated_at"]) == order.updated_at
    assert set(got["queue"]) == {"position", "estimated_wait_seconds"}
    assert type(got["queue"]["position"]) is int
    assert got["queue"]["position"] >= 1
    assert got["queue"]["estimated_wait_seconds"] >= 1
    for name in ("subtotal", "discount", "payable"):
        assert type(got[name]) is int, name


def test_without_a_coupon_nothing_is_discounted(api: APIClient, tea: Product) -> None:
    # given
    body = {"customer_id": "c-42", "items": [{"sku": "TM-MILKTEA-L", "quantity": 3}]}
    # when
    response = post_order(api, body)
    # then
    assert response.status_code == 202
    got = response.json()
    assert (got["subtotal"], got["discount"], got["payable"]) == (5400, 0, 5400)
    assert got["coupon_code"] is None


def test_positions_count_up_in_the_line(api: APIClient, tea: Product) -> None:
    # given
    item = [{"sku": "TM-MILKTEA-L", "quantity": 1}]
    first = post_order(api, {"customer_id": "c-1", "items": item}, key="k1")
    # when
    second = post_order(api, {"customer_id": "c-2", "items": item}, key="k2")
    # then
    assert second.json()["queue"]["position"] == first.json()["queue"]["position"] + 1


def test_a_replay_returns_the_same_order_with_200(api: APIClient, tea: Product) -> None:
    # given
    body = {"customer_id": "c-42", "items": [{"sku": "TM-MILKTEA-L", "quantity": 2}]}
    first = post_order(api, body, key="same")
    # when
    again = post_order(api, body, key="same")
    # then
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again["Location"] == first["Location"]
    assert Order.objects.count() == 1


def test_a_replay_shows_the_current_status(api: APIClient, tea: Product) -> None:
    # given
    body = {"customer_id": "c-42", "items": [{"sku": "TM-MILKTEA-L", "quantity": 2}]}
    first = post_order(api, body, key="same")
    orders_services.reservations_take_batch(campaign_id=None, limit=10)
    # when
    again = post_order(api, body, key="same")
    # then
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "reserved"
    assert again.json()["queue"] == {"position": 0, "estimated_wait_seconds": 0}


@pytest.mark.parametrize(
    "changed",
    [
        {"customer_id": "c-43"},
        {"items": [{"sku": "TM-MILKTEA-L", "quantity": 3}]},
        {"coupon_code": "SOMECODE"},
        {"callback_url": "https://bot.example.com/hook"},
    ],
    ids=["customer", "quantity", "coupon", "callback"],
)
def test_the_same_key_with_another_body_is_refused(
    api: APIClient, tea: Product, changed: dict[str, object]
) -> None:
    # given
    body = {"customer_id": "c-42", "items": [{"sku": "TM-MILKTEA-L", "quantity": 2}]}
    post_order(api, body, key="same")
    # when
    response = post_order(api, {**body, **changed}, key="same")
    # then
    assert_error(response, 422, "idempotency_key_reused")
    assert Order.objects.count() == 1


def test_keys_belong_to_their_client(api: APIClient, chatbot: ApiClient, tea: Product) -> None:
    # given
    body = {"customer_id": "c-42", "items": [{"sku": "TM-MILKTEA-L", "quantity": 2}]}
    other = api_for(ApiClientFactory())
    theirs = post_order(other, body, key="same")
    # when
    mine = post_order(api, body, key="same")
    # then
    assert mine.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]
    assert Order.objects.filter(client=chatbot).count() == 1


# --- Reading --------------------------------------------------------------------------------


def test_get_detail_returns_the_order(api: APIClient, tea: Product) -> None:
    # given
    body = {"customer_id": "c-42", "items": [{"sku": "TM-MILKTEA-L", "quantity": 2}]}
    placed = post_order(api, body).json()
    # when
    response = api.get(f"{URL}{placed['id']}/")
    # then
    assert response.status_code == 200
    assert response.json() == placed


def test_get_detail_of_a_rejected_order_names_the_reason(
    api: APIClient, chatbot: ApiClient
) -> None:
    # given
    gone = ProductFactory(stock=1)
    order = place(chatbot, "c-1", [(gone, 1)])
    Product.objects.filter(pk=gone.pk).update(stock=0)  # sold out while it waited
    orders_services.reservations_take_batch(campaign_id=None, limit=10)
    # when
    response = api.get(f"{URL}{order.public_id}/")
    # then
    assert response.json()["status"] == "rejected"
    assert response.json()["reason"] == "sold_out"
    assert response.json()["queue"] == {"position": 0, "estimated_wait_seconds": 0}


def test_list_by_customer_shows_that_customers_orders_newest_first(
    api: APIClient, chatbot: ApiClient, tea: Product
) -> None:
    # given
    older = place(chatbot, "c-1", [(tea, 1)])
    newer = place(chatbot, "c-1", [(tea, 2)])
    place(chatbot, "c-2", [(tea, 1)])
    # when
    response = api.get(URL, {"customer_id": "c-1"})
    # then
    assert response.status_code == 200
    results = response.json()["results"]
    assert [o["id"] for o in results] == [str(newer.public_id), str(older.public_id)]
    assert all(set(o) == ORDER_FIELDS for o in results)
    assert results[0]["items"] == [{"sku": tea.sku, "quantity": 2, "unit_price": 1800}]
    assert results[0] == api.get(f"{URL}{newer.public_id}/").json()


def test_list_without_a_customer_shows_all_of_the_clients_orders_only(
    api: APIClient, chatbot: ApiClient, tea: Product
) -> None:
    # given
    mine = {place(chatbot, "c-1", [(tea, 1)]), place(chatbot, "c-2", [(tea, 1)])}
    place(ApiClientFactory(), "c-1", [(tea, 1)])
    # when
    response = api.get(URL)
    # then
    assert response.status_code == 200
    assert {o["id"] for o in response.json()["results"]} == {str(o.public_id) for o in mine}


def test_another_clients_order_does_not_exist(api: APIClient, tea: Product) -> None:
    # given
    theirs = place(ApiClientFactory(), "c-1", [(tea, 1)])
    unknown = uuid.uuid4()
    # when
    get_theirs = api.get(f"{URL}{theirs.public_id}/")
    get_unknown = api.get(f"{URL}{unknown}/")
    cancel_theirs = api.post(f"{URL}{theirs.public_id}/cancel/")
    cancel_unknown = api.post(f"{URL}{unknown}/cancel/")
    listed = api.get(URL, {"customer_id": "c-1"})
    # then
    for response in (get_theirs, get_unknown, cancel_theirs, cancel_unknown):
        assert_error(response, 404, "not_found")
    assert get_theirs.json() == get_unknown.json()
    assert cancel_theirs.json() == cancel_unknown.json()
    assert listed.json()["results"] == []
    theirs.refresh_from_db()
    assert theirs.status == "received"


# --- Cancelling -----------------------------------------------------------------------------


def test_cancelling_a_received_order(api: APIClient, chatbot: ApiClient, tea: Product) -> None:
    # given
    order = place(chatbot, "c-1", [(tea, 1)])
    # when
    response = api.post(f"{URL}{order.public_id}/cancel/")
    # then
    assert response.status_code == 200
    assert response.json()["id"] == str(order.public_id)
    assert response.json()["status"] == "cancelled"
    assert response.json()["queue"] == {"position": 0, "estimated_wait_seconds": 0}
    order.refresh_from_db()
    assert order.status == "cancelled"


def test_cancelling_a_reserved_order_gives_its_coupon_back(
    api: APIClient, chatbot: ApiClient, tea: Product
) -> None:
    # given
    campaign = CampaignFactory()
    coupon = claim(chatbot, campaign, "c-1")
    order = place(chatbot, "c-1", [(tea, 2)], coupon=coupon)
    orders_services.reservations_take_batch(campaign_id=campaign.pk, limit=10)
    # when
    response = api.post(f"{URL}{order.public_id}/cancel/")
    # then
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    coupon.refresh_from_db()
    assert coupon.status == Coupon.Status.ISSUED


def test_cancelling_twice_answers_200_both_times(
    api: APIClient, chatbot: ApiClient, tea: Product
) -> None:
    # given
    order = place(chatbot, "c-1", [(tea, 1)])
    first = api.post(f"{URL}{order.public_id}/cancel/")
    # when
    again = api.post(f"{URL}{order.public_id}/cancel/")
    # then
    assert first.status_code == 200
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"
    assert again.json()["updated_at"] == first.json()["updated_at"]


def paid_order(chatbot: ApiClient, tea: Product) -> Order:
    campaign = CampaignFactory(max_discount=2500)
    order = place(chatbot, "c-1", [(tea, 1)], coupon=claim(chatbot, campaign, "c-1"))
    orders_services.reservations_take_batch(campaign_id=campaign.pk, limit=10)
    orders_services.payments_claim_batch(limit=10)  # payable 0: paid without a charge
    return order


def rejected_order(chatbot: ApiClient, tea: Product) -> Order:
    gone = ProductFactory(stock=1)
    order = place(chatbot, "c-1", [(gone, 1)])
    Product.objects.filter(pk=gone.pk).update(stock=0)  # sold out while it waited
    orders_services.reservations_take_batch(campaign_id=None, limit=10)
    return order


@pytest.mark.parametrize(
    ("make", "status"),
    [(paid_order, "paid"), (rejected_order, "rejected")],
    ids=["paid", "rejected"],
)
def test_a_paid_or_rejected_order_is_not_cancellable(
    api: APIClient, chatbot: ApiClient, tea: Product, make, status: str
) -> None:
    # given
    order = make(chatbot, tea)
    order.refresh_from_db()
    assert order.status == status
    # when
    response = api.post(f"{URL}{order.public_id}/cancel/")
    # then
    assert_error(response, 409, "not_cancellable")
    order.refresh_from_db()
    assert order.status == status
