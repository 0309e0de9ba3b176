"""The orders admin: read-only windows onto orders, holds, payments, callbacks and events,
with orders made by the real services; the cancel action; and the big-table hygiene (no
query per row, no full count)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from coupons.models import Campaign, Coupon
from infra.admin import EstimatedCountPaginator
from orders import admin as orders_admin
from orders import services
from orders.gateway.client import ChargeOutcome
from orders.models import CallbackDelivery, Order, OrderEvent, Payment, Reservation
from shop.models import ApiClient, Product
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory

if TYPE_CHECKING:
    from django.http import HttpResponse

pytestmark = pytest.mark.django_db

ORDERS = "/admin/orders/order/"
ERROR_429 = "gateway said 429: over quota for this merchant, retry after 30 seconds please"


@dataclass
class Shop:
    campaign: Campaign
    tea: Product


@pytest.fixture
def shop() -> Shop:
    return Shop(
        campaign=CampaignFactory(slug="spring", name="Spring", budget_total=100_000),
        tea=ProductFactory(sku="TEA-1", price=1800, stock=10),
    )


@pytest.fixture
def staff_client(django_user_model: type) -> Client:
    user = django_user_model.objects.create_user(username="clerk", password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["coupons", "orders"])
    )
    client = Client()
    client.force_login(user)
    return client


def reserved(
    chatbot: ApiClient, shop: Shop, customer: str, units: int = 2, **kwargs: object
) -> Order:
    """A reserved order with the campaign's coupon: 1800 a unit, 2500 off at most."""
    coupon = claim(chatbot, shop.campaign, customer)
    order = place(chatbot, customer, [(shop.tea, units)], coupon=coupon, **kwargs)
    services.reservations_take_batch(campaign_id=shop.campaign.pk, limit=100)
    order.refresh_from_db()
    assert order.status == Order.Status.RESERVED
    return order


def charged(outcome: ChargeOutcome) -> None:
    """Claim every due payment and record `outcome` for each, as the settlement worker
    would after calling the gateway."""
    jobs = services.payments_claim_batch(limit=100).jobs
    services.payments_record([(job, outcome) for job in jobs])


def rejected(chatbot: ApiClient, shop: Shop, customer: str) -> Order:
    order = place(chatbot, customer, [(shop.tea, 1)], coupon_code="NO-SUCH-CODE")
    services.reservations_take_batch(campaign_id=None, limit=100)
    order.refresh_from_db()
    assert order.status == Order.Status.REJECTED
    return order


def action(client: Client, name: str, *orders: Order) -> HttpResponse:
    return client.post(
        ORDERS, {"action": name, "_selected_action": [str(o.pk) for o in orders]}, follow=True
    )


def messages_of(response: HttpResponse) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def inline_cells(html: str) -> list[tuple[str, str]]:
    """(column, value) of every read-only inline cell on a change page."""
    return re.findall(r'<td class="field-(\w+)">\s*<p>(.*?)</p>', html, flags=re.DOTALL)


def listed(client: Client, url: str, **query: object) -> list[object]:
    response = client.get(url, query)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_order_list_shows_status_and_money(
    admin_client: Client, chatbot: ApiClient, shop: Shop
) -> None:
    # given
    order = reserved(chatbot, shop, "ann")
    # when
    response = admin_client.get(ORDERS)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert str(order.public_id) in html
    assert '<td class="field-customer_id">ann</td>' in html
    assert '<td class="field-status">Reserved</td>' in html
    assert '<td class="field-subtotal">3600</td>' in html
    assert '<td class="field-discount">2500</td>' in html
    assert '<td class="field-payable">1100</td>' in html
    assert '<td class="field-campaign nowrap">Spring</td>' in html
    assert response.context["cl"].full_result_count is None  # never counts the whole table


def test_order_search_is_exact_and_filters_narrow(
    admin_client: Client, chatbot: ApiClient, shop: Shop
) -> None:
    # given
    ann = reserved(chatbot, shop, "ann", key="ann-key-1")
    bob = rejected(chatbot, shop, "bob")
    # when / then
    assert listed(admin_client, ORDERS, q=str(bob.public_id)) == [bob]
    assert listed(admin_client, ORDERS, q=str(bob.public_id).upper()) == [bob]
    assert listed(admin_client, ORDERS, q="ann") == [ann]
    assert listed(admin_client, ORDERS, q="ann-key-1") == [ann]
    assert listed(admin_client, ORDERS, q="an") == []
    assert listed(admin_client, ORDERS, status__exact="rejected") == [bob]
    assert listed(admin_client, ORDERS, reason__exact="coupon_invalid") == [bob]
    assert listed(admin_client, ORDERS, campaign__id__exact=shop.campaign.pk) == [ann]


def test_order_page_shows_lines_events_hold_payment_and_callbacks(
    admin_client: Client, chatbot: ApiClient, shop: Shop
) -> None:
    # given
    order = reserved(chatbot, shop, "ann", callback_url="https://bot.example/cb")
    charged(ChargeOutcome(kind="retry", retry_after=30, error=ERROR_429))
    # when
    response = admin_client.get(f"{ORDERS}{order.pk}/change/")
    # then
    html = response.content.decode()
    assert response.status_code == 200
    cells = inline_cells(html)
    assert ("sku", "TEA-1") in cells
    assert ("quantity", "2") in cells
    assert ("actor", "worker:reserve") in cells
    assert ("target", "payment:retry") in cells
    assert ("discount", "2500") in cells  # the hold
    assert ("amount", "1100") in cells  # the payment
    assert ("last_error", ERROR_429) in cells
    assert ("order_status", "reserved") in cells  # the callback
    for field in ["status", "customer_id", "lines-0-quantity", "payment-0-status"]:
        assert f'name="{field}"' not in html


def test_payment_and_callback_lists_and_filters(
    admin_client: Client, chatbot: ApiClient, shop: Shop
) -> None:
    # given
    retrying = reserved(chatbot, shop, "ann", callback_url="https://bot.example/cb")
    charged(ChargeOutcome(kind="retry", retry_after=30, error=ERROR_429))
    paid = reserved(chatbot, shop, "bob", units=3)
    charged(ChargeOutcome(kind="succeeded", charge_id="ch_123"))
    # when
    payments = admin_client.get("/admin/orders/payment/")
    callbacks = admin_client.get("/admin/orders/callbackdelivery/")
    # then
    html = payments.content.decode()
    assert payments.status_code == callbacks.status_code == 200
    assert '<td class="field-amount">1100</td>' in html
    assert '<td class="field-amount">2900</td>' in html
    assert '<td class="field-charge_id">ch_123</td>' in html
    assert f'<td class="field-last_error_short">{ERROR_429[:59]}…</td>' in html
    assert [
        p.order for p in listed(admin_client, "/admin/orders/payment/", status__exact="retry")
    ] == [retrying]
    assert [
        p.order for p in listed(admin_client, "/admin/orders/payment/", q=str(paid.public_id))
    ] == [paid]
    assert '<td class="field-order_status">reserved</td>' in callbacks.content.decode()
    assert len(listed(admin_client, "/admin/orders/callbackdelivery/", state__exact="pending")) == 1
    assert listed(admin_client, "/admin/orders/callbackdelivery/", state__exact="delivered") == []


def test_event_and_reservation_lists(admin_client: Client, chatbot: ApiClient, shop: Shop) -> None:
    # given
    order = reserved(chatbot, shop, "ann")
    other = reserved(chatbot, shop, "bob")
    # when
    events = listed(admin_client, "/admin/orders/orderevent/", q=str(order.public_id))
    holds = admin_client.get("/admin/orders/reservation/")
    # then
    assert [(e.source, e.target, e.actor) for e in events] == [
        ("received", "reserved", "worker:reserve")
    ]
    assert holds.status_code == 200
    assert '<td class="field-discount">2500</td>' in holds.content.decode()
    assert [
        h.order for h in listed(admin_client, "/admin/orders/reservation/", q=str(other.public_id))
    ] == [other]
    assert admin_client.get(f"/admin/orders/orderevent/{events[0].pk}/change/").status_code == 200


def test_cancel_releases_a_reserved_order(
    admin_client: Client, chatbot: ApiClient, shop: Shop
) -> None:
    # given
    order = reserved(chatbot, shop, "ann")
    shop.tea.refresh_from_db()
    assert shop.tea.stock == 8
    # when
    response = action(admin_client, "cancel", order)
    # then
    order.refresh_from_db()
    shop.tea.refresh_from_db()
    shop.campaign.refresh_from_db()
    assert messages_of(response) == [f"Cancelled: {order.public_id}."]
    assert order.status == Order.Status.CANCELLED
    assert shop.tea.stock == 10
    assert shop.campaign.budget_held == 0
    assert order.coupon.status == Coupon.Status.ISSUED
    assert Reservation.objects.get(order=order).outcome == Reservation.Outcome.RELEASED
    assert OrderEvent.objects.filter(order=order).latest("id").actor == "staff:admin"


def test_cancel_refuses_paid_and_finished_orders(
    admin_client: Client, chatbot: ApiClient, shop: Shop
) -> None:
    # given
    paid = reserved(chatbot, shop, "ann")
    charged(ChargeOutcome(kind="succeeded", charge_id="ch_1"))
    bounced = rejected(chatbot, shop, "bob")
    gone = reserved(chatbot, shop, "cat")
    services.order_cancel(client_id=chatbot.pk, public_id=str(gone.public_id), actor="bot")
    # when
    response = action(admin_client, "cancel", paid, bounced, gone)
    # then
    assert messages_of(response) == [
        f"Already cancelled: {gone.public_id}.",
        f"Not cancelled: {paid.public_id}: The order is paid. "
        f"{bounced.public_id}: The order is rejected.",
    ]
    assert Order.objects.get(pk=paid.pk).status == Order.Status.PAID
    assert Order.objects.get(pk=bounced.pk).status == Order.Status.REJECTED


def test_cancel_refuses_more_than_its_limit(
    admin_client: Client, chatbot: ApiClient, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    monkeypatch.setattr(orders_admin, "CANCEL_LIMIT", 1)
    first, second = reserved(chatbot, shop, "ann"), reserved(chatbot, shop, "bob")
    # when
    response = action(admin_client, "cancel", first, second)
    # then
    assert messages_of(response) == [
        "Select at most 1 orders to cancel at once. Nothing was cancelled."
    ]
    assert set(Order.objects.values_list("status", flat=True)) == {Order.Status.RESERVED}


def test_staff_cancel_but_never_write_orders_by_hand(
    staff_client: Client, chatbot: ApiClient, shop: Shop
) -> None:
    # given
    order = reserved(chatbot, shop, "ann")
    charged(ChargeOutcome(kind="retry", retry_after=30, error=ERROR_429))
    payment = Payment.objects.get(order=order)
    # when
    page = staff_client.get(f"{ORDERS}{order.pk}/change/")
    writes = [
        staff_client.get(f"{ORDERS}add/"),
        staff_client.post(f"{ORDERS}add/", {"customer_id": "eve"}),
        staff_client.post(f"{ORDERS}{order.pk}/change/", {"status": "paid"}),
        staff_client.get(f"{ORDERS}{order.pk}/delete/"),
        staff_client.post(f"{ORDERS}{order.pk}/delete/", {"post": "yes"}),
        staff_client.get("/admin/orders/payment/add/"),
        staff_client.post(f"/admin/orders/payment/{payment.pk}/change/", {"status": "succeeded"}),
        staff_client.get("/admin/orders/orderevent/add/"),
    ]
    editable = list(page.context["adminform"].form.fields)
    changelist = staff_client.get(ORDERS)
    cancelled = action(staff_client, "cancel", order)
    # then
    assert page.status_code == 200
    assert editable == []  # a view-only page
    assert [r.status_code for r in writes] == [403] * len(writes)
    assert [name for name, _ in changelist.context["action_form"].fields["action"].choices] == [
        "",
        "cancel",
        "unpark",
        "resend_callbacks",
    ]
    assert messages_of(cancelled) == [f"Cancelled: {order.public_id}."]
    assert OrderEvent.objects.filter(order=order).latest("id").actor == "staff:clerk"
    assert Payment.objects.get(pk=payment.pk).status == Payment.Status.RETRY


@pytest.mark.parametrize(
    "url",
    [
        ORDERS,
        "/admin/orders/payment/",
        "/admin/orders/callbackdelivery/",
        "/admin/orders/orderevent/",
        "/admin/orders/reservation/",
        "/admin/coupons/coupon/",
    ],
)
def test_lists_cost_the_same_queries_for_more_rows(
    admin_client: Client, chatbot: ApiClient, shop: Shop, url: str
) -> None:
    # given
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured)

    reserved(chatbot, shop, "c-0", callback_url="https://bot.example/cb")
    charged(ChargeOutcome(kind="retry", retry_after=30, error=ERROR_429))
    few = queries()
    # when
    for n in range(1, 5):
        reserved(chatbot, shop, f"c-{n}", units=1, callback_url="https://bot.example/cb")
    charged(ChargeOutcome(kind="retry", retry_after=30, error=ERROR_429))
    many = queries()
    # then
    assert many == few


def test_unfiltered_lists_of_big_tables_use_the_planners_estimate(
    chatbot: ApiClient, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: statistics say 2 orders; a third arrived since
    reserved(chatbot, shop, "ann")
    reserved(chatbot, shop, "bob")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_order")
    rejected(chatbot, shop, "cat")
    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 1)
    # when
    everything = EstimatedCountPaginator(Order.objects.order_by("id"), 100).count
    filtered = EstimatedCountPaginator(
        Order.objects.filter(status="reserved").order_by("id"), 100
    ).count
    # then
    assert everything == 2
    assert filtered == 2
    assert EstimatedCountPaginator(Order.objects.exclude(status="x").order_by("id"), 100).count == 3
    assert CallbackDelivery.objects.count() == 0
