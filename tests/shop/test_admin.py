"""The catalogue and API-client admin: what staff see, the key actions against the real API,
and that only superusers reach API clients and keys."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from shop import services
from shop.admin import ProductAdmin
from shop.models import ApiClient, ApiKey, AuditEntry, Product
from tests.factories.shop import ApiClientFactory, ProductFactory, StoreFactory

if TYPE_CHECKING:
    from django.http import HttpResponse

pytestmark = pytest.mark.django_db

KEY_RE = re.compile(r"cop_[A-Za-z0-9_-]{43}")


@pytest.fixture
def staff_client(django_user_model: type) -> Client:
    """Staff with every model permission of the three apps: only the superuser rule stands
    between them and the API clients."""
    user = django_user_model.objects.create_user(username="clerk", password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["shop", "coupons", "orders"])
    )
    client = Client()
    client.force_login(user)
    return client


def action(client: Client, url: str, name: str, *pks: int) -> HttpResponse:
    return client.post(
        url, {"action": name, "_selected_action": [str(pk) for pk in pks]}, follow=True
    )


def messages_of(response: HttpResponse) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def campaigns_with(key: str) -> int:
    return APIClient().get("/api/v1/campaigns/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code


def test_product_list_shows_price_in_fen_and_yuan_and_stock(admin_client: Client) -> None:
    # given
    ProductFactory(sku="TEA-1", name="Oolong", price=1850, stock=7, stock_total=10)
    # when
    response = admin_client.get("/admin/shop/product/")
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "TEA-1" in html
    assert '<td class="field-price">1850</td>' in html
    assert '<td class="field-price_yuan">¥18.50</td>' in html
    assert '<td class="field-stock">7</td>' in html
    assert '<td class="field-stock_total">10</td>' in html


def test_product_search_and_store_filter(admin_client: Client) -> None:
    # given
    north, south = StoreFactory(slug="north"), StoreFactory(slug="south")
    ProductFactory(sku="TEA-1", name="Oolong", store=north)
    ProductFactory(sku="CUP-1", name="Teacup", store=south)
    ProductFactory(sku="PAN-1", name="Wok", store=south)
    # when
    by_name = admin_client.get("/admin/shop/product/", {"q": "tea"})
    by_store = admin_client.get("/admin/shop/product/", {"store__id__exact": south.pk})
    # then
    assert [p.sku for p in by_name.context["cl"].result_list] == ["CUP-1", "TEA-1"]
    assert [p.sku for p in by_store.context["cl"].result_list] == ["CUP-1", "PAN-1"]


def test_store_list_counts_products(admin_client: Client) -> None:
    # given
    store = StoreFactory(slug="north", name="North")
    ProductFactory.create_batch(3, store=store)
    # when
    response = admin_client.get("/admin/shop/store/")
    # then
    assert response.status_code == 200
    assert '<td class="field-product_count">3</td>' in response.content.decode()


def test_product_stock_is_read_only_once_created(admin_client: Client) -> None:
    # given
    product = ProductFactory(stock=7)
    # when
    change = admin_client.get(f"/admin/shop/product/{product.pk}/change/")
    add = admin_client.get("/admin/shop/product/add/")
    # then
    assert change.status_code == add.status_code == 200
    assert 'name="stock"' not in change.content.decode()
    assert 'name="stock"' in add.content.decode()


def test_editing_a_product_keeps_the_stock_that_orders_took_meanwhile(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the admin read the product, then an order took 3 units before it saved
    product = ProductFactory(sku="TEA-1", name="Oolong", price=1800, stock=10)
    stale = Product.objects.get(pk=product.pk)
    monkeypatch.setattr(ProductAdmin, "get_object", lambda *args, **kwargs: stale)
    services.stock_take(quantities={product.pk: 3})
    # when
    response = admin_client.post(
        f"/admin/shop/product/{product.pk}/change/",
        {
            "sku": "TEA-1",
            "name": "Oolong, aged",
            "store": product.store_id,
            "price": 1800,
            "currency": "CNY",
        },
    )
    # then
    product.refresh_from_db()
    assert response.status_code == 302
    assert product.name == "Oolong, aged"
    assert product.stock == 7


def test_api_client_list_counts_keys_and_hides_the_webhook_secret(admin_client: Client) -> None:
    # given
    bot = ApiClientFactory(name="acme-bot", webhook_secret="whsec-visible-only-on-change")
    services.api_key_issue(client_id=bot.pk)
    services.api_key_revoke(key_id=services.api_key_issue(client_id=bot.pk).key.pk)
    # when
    listing = admin_client.get("/admin/shop/apiclient/")
    change = admin_client.get(f"/admin/shop/apiclient/{bot.pk}/change/")
    # then
    html = listing.content.decode()
    assert listing.status_code == change.status_code == 200
    assert '<td class="field-live_key_count">1</td>' in html
    assert '<td class="field-key_count">2</td>' in html
    assert "whsec-visible-only-on-change" not in html
    change_html = change.content.decode()
    assert "whsec-visible-only-on-change" in change_html
    assert 'name="webhook_secret"' not in change_html
    for key in ApiKey.objects.filter(client=bot):
        assert key.prefix in change_html
        assert key.key_hash not in change_html


def test_adding_a_client_gets_its_webhook_secret_from_the_service(admin_client: Client) -> None:
    # given / when
    response = admin_client.post(
        "/admin/shop/apiclient/add/", {"name": "new-bot", "_continue": "1"}
    )
    # then
    client = ApiClient.objects.get(name="new-bot")
    assert response.status_code == 302
    assert response.url == f"/admin/shop/apiclient/{client.pk}/change/"
    assert len(client.webhook_secret) == 64
    assert client.is_active


def test_issued_key_is_shown_once_and_authenticates(admin_client: Client) -> None:
    # given
    bot = ApiClientFactory()
    # when
    response = action(admin_client, "/admin/shop/apiclient/", "issue_api_key", bot.pk)
    # then
    [message] = messages_of(response)
    key = KEY_RE.search(message).group(0)
    issued = ApiKey.objects.get(client=bot)
    assert key.startswith(issued.prefix)
    assert issued.label == "issued in admin by admin"
    assert campaigns_with(key) == 200


def test_rotating_the_webhook_secret_keeps_the_old_one_for_the_overlap(
    admin_client: Client, settings
) -> None:
    # given
    settings.WEBHOOK_SECRET_OVERLAP_HOURS = 24
    bot = ApiClientFactory()
    old = bot.webhook_secret
    # when
    response = action(admin_client, "/admin/shop/apiclient/", "rotate_webhook_secret", bot.pk)
    # then: a new secret; the old one valid beside it for a day, and the page says until when
    bot.refresh_from_db()
    assert bot.webhook_secret != old
    assert bot.webhook_secret_previous == old
    overlap = bot.webhook_secret_previous_until - timezone.now()
    assert timedelta(hours=23, minutes=59) < overlap <= timedelta(hours=24)
    [message] = messages_of(response)
    assert f"the old one signs too until {bot.webhook_secret_previous_until:%Y-%m-%d}" in message
    assert old not in message
    assert AuditEntry.objects.filter(
        action="api_client.webhook_secret_rotate", target_id=str(bot.pk), actor="staff:admin"
    ).exists()


def test_replacing_a_leaked_webhook_secret_ends_the_old_one_at_once(admin_client: Client) -> None:
    bot = ApiClientFactory()
    old = bot.webhook_secret
    action(admin_client, "/admin/shop/apiclient/", "replace_webhook_secret_now", bot.pk)
    bot.refresh_from_db()
    assert bot.webhook_secret != old
    assert (bot.webhook_secret_previous, bot.webhook_secret_previous_until) == ("", None)


def test_revoked_key_is_refused(admin_client: Client, chatbot: ApiClient) -> None:
    # given
    issued = services.api_key_issue(client_id=chatbot.pk)
    assert campaigns_with(issued.raw) == 200
    # when
    response = action(admin_client, "/admin/shop/apikey/", "revoke", issued.key.pk)
    # then
    issued.key.refresh_from_db()
    assert messages_of(response) == [f"Revoked: {issued.key.prefix}."]
    assert issued.key.revoked_at is not None
    assert campaigns_with(issued.raw) == 401


def test_keys_cannot_be_added_by_hand(admin_client: Client) -> None:
    # given / when
    response = admin_client.get("/admin/shop/apikey/add/")
    # then
    assert response.status_code == 403


def test_staff_who_are_not_superusers_cannot_reach_clients_or_keys(
    staff_client: Client, chatbot: ApiClient
) -> None:
    # given
    key = services.api_key_issue(client_id=chatbot.pk).key
    # when
    responses = [
        staff_client.get(url)
        for url in [
            "/admin/shop/apiclient/",
            f"/admin/shop/apiclient/{chatbot.pk}/change/",
            "/admin/shop/apiclient/add/",
            "/admin/shop/apikey/",
            f"/admin/shop/apikey/{key.pk}/change/",
        ]
    ]
    issue = action(staff_client, "/admin/shop/apiclient/", "issue_api_key", chatbot.pk)
    index = staff_client.get("/admin/")
    # then
    assert [r.status_code for r in responses] == [403] * 5
    assert issue.status_code == 403
    assert ApiKey.objects.filter(client=chatbot).count() == 1
    assert "/admin/shop/product/" in index.content.decode()
    assert "/admin/shop/apiclient/" not in index.content.decode()


def test_admin_index_lists_every_model_for_a_superuser(admin_client: Client) -> None:
    # given / when
    response = admin_client.get("/admin/")
    # then
    html = response.content.decode()
    assert response.status_code == 200
    for path in [
        "shop/store",
        "shop/product",
        "shop/apiclient",
        "shop/apikey",
        "coupons/campaign",
        "coupons/campaignevent",
        "coupons/coupon",
        "orders/order",
        "orders/orderevent",
        "orders/reservation",
        "orders/payment",
        "orders/callbackdelivery",
    ]:
        assert f"/admin/{path}/" in html


@override_settings(API_KEY_CACHE_SECONDS=30)
def test_a_deactivated_client_is_refused_although_its_key_was_cached(
    admin_client: Client, chatbot: ApiClient, django_capture_on_commit_callbacks: Any
) -> None:
    # given: the client's key is in this process's cache
    issued = services.api_key_issue(client_id=chatbot.pk)
    assert campaigns_with(issued.raw) == 200
    # when: a superuser unticks "is active"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/shop/apiclient/{chatbot.pk}/change/",
            {
                "name": chatbot.name,
                "keys-TOTAL_FORMS": "1",
                "keys-INITIAL_FORMS": "1",
                "keys-MIN_NUM_FORMS": "0",
                "keys-MAX_NUM_FORMS": "1000",
                "keys-0-id": str(issued.key.pk),
                "keys-0-client": str(chatbot.pk),
            },
        )
    # then
    assert response.status_code == 302, response.content[:2000]
    chatbot.refresh_from_db()
    assert not chatbot.is_active
    assert campaigns_with(issued.raw) == 401
