"""Test mode in the admin (docs/integrator-guide.md, Test mode): test orders, campaigns,
coupons, products and keys can be filtered out, and a test campaign's page says what it is."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from shop import services as shop_services
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ApiClientFactory, ProductFactory

if TYPE_CHECKING:
    from django.test import Client

pytestmark = pytest.mark.django_db


def test_test_data_can_be_filtered_out_of_every_list(superuser: Client) -> None:
    # given: a live and a test order, campaign, coupon, product and key
    client = ApiClientFactory()
    shop_services.api_key_issue(client_id=client.pk, label="live one")
    shop_services.api_key_issue(client_id=client.pk, label="test one", livemode=False)
    live_campaign = CampaignFactory(slug="live-campaign")
    test_campaign = CampaignFactory(slug="test-campaign", livemode=False)
    live_coupon = claim(client, live_campaign, "c-1")
    test_coupon = claim(client, test_campaign, "c-1", livemode=False)
    live_tea = ProductFactory(sku="LIVE-TEA")
    test_tea = ProductFactory(sku="TEST-TEA", livemode=False)
    live_order = place(client, "c-1", [(live_tea, 1)])
    test_order = place(client, "c-1", [(test_tea, 1)], livemode=False)
    # when / then: filtered to live data, no test row is listed, and the other way round
    lists = [
        ("orders/order", str(live_order.public_id), str(test_order.public_id)),
        ("coupons/campaign", live_campaign.slug, test_campaign.slug),
        ("coupons/coupon", live_coupon.code, test_coupon.code),
        ("shop/product", live_tea.sku, test_tea.sku),
        ("shop/apikey", "live one", "test one"),
    ]
    for path, live, test in lists:
        param = "campaign_livemode" if path == "coupons/coupon" else "livemode__exact"
        live_page = superuser.get(f"/admin/{path}/?{param}=1").content.decode()
        test_page = superuser.get(f"/admin/{path}/?{param}=0").content.decode()
        assert (live in live_page, test in live_page) == (True, False), path
        assert (test in test_page, live in test_page) == (True, False), path


def test_a_test_campaigns_page_says_it_is_one(viewer: Client) -> None:
    # given
    live_campaign = CampaignFactory()
    test_campaign = CampaignFactory(livemode=False)
    # when
    live_page = viewer.get(f"/admin/coupons/campaign/{live_campaign.pk}/dashboard/")
    test_page = viewer.get(f"/admin/coupons/campaign/{test_campaign.pk}/dashboard/")
    # then
    assert 'id="test-mode"' in test_page.content.decode()
    assert 'id="test-mode"' not in live_page.content.decode()
