"""The campaign and coupon admin: the figures staff see, the filters and searches, and the
pause/resume/end actions going through the service with the staff member as actor."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from coupons.admin import CampaignAdmin
from coupons.models import Campaign, CampaignEvent, Coupon, CouponSlice
from coupons.selectors import campaign_coupons_issued
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim

if TYPE_CHECKING:
    from django.http import HttpResponse

    from shop.models import ApiClient

pytestmark = pytest.mark.django_db

CAMPAIGNS = "/admin/coupons/campaign/"
COUPONS = "/admin/coupons/coupon/"


@pytest.fixture
def staff_client(django_user_model: type) -> Client:
    user = django_user_model.objects.create_user(username="clerk", password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["coupons", "orders"])
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


def slugs(response: HttpResponse) -> list[str]:
    return sorted(c.slug for c in response.context["cl"].result_list)


def test_campaign_list_shows_status_counters_and_budget(admin_client: Client) -> None:
    # given
    CampaignFactory(
        slug="spring",
        status=Campaign.Status.PAUSED,
        coupons_total=5000,
        coupons_issued=1234,
        budget_total=10_000_000,
        budget_held=2500,
        budget_spent=1_250_075,
        per_customer_limit=3,
    )
    CampaignFactory(slug="summer", starts_at=timezone.now() + timedelta(days=1))
    # when
    response = admin_client.get(CAMPAIGNS)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert '<td class="field-coupons">1,234 / 5,000</td>' in html
    assert '<td class="field-budget">¥25.00 / ¥12,500.75 / ¥100,000.00</td>' in html
    assert '<td class="field-per_customer_limit">3</td>' in html
    assert '<td class="field-public_status">paused</td>' in html
    assert '<td class="field-public_status">scheduled</td>' in html


def test_campaign_filters_and_search(admin_client: Client) -> None:
    # given
    now = timezone.now()
    CampaignFactory(slug="live", name="Spring free order")
    CampaignFactory(slug="later", starts_at=now + timedelta(days=1))
    CampaignFactory(slug="held", status=Campaign.Status.PAUSED)
    CampaignFactory(slug="over", starts_at=now - timedelta(days=2), ends_at=now - timedelta(days=1))
    # when
    by_public = {
        s: slugs(admin_client.get(CAMPAIGNS, {"public_status": s}))
        for s in ["active", "scheduled", "paused", "ended"]
    }
    by_status = slugs(admin_client.get(CAMPAIGNS, {"status__exact": "paused"}))
    by_name = slugs(admin_client.get(CAMPAIGNS, {"q": "spring"}))
    # then
    assert by_public == {
        "active": ["live"],
        "scheduled": ["later"],
        "paused": ["held"],
        "ended": ["over"],
    }
    assert by_status == ["held"]
    assert by_name == ["live"]


def test_pause_and_resume_record_the_staff_member(admin_client: Client) -> None:
    # given
    campaign = CampaignFactory(slug="spring")
    # when
    paused = action(admin_client, CAMPAIGNS, "pause", campaign.pk)
    campaign.refresh_from_db()
    status_when_paused = campaign.status
    resumed = action(admin_client, CAMPAIGNS, "resume", campaign.pk)
    # then
    campaign.refresh_from_db()
    assert status_when_paused == Campaign.Status.PAUSED
    assert campaign.status == Campaign.Status.ACTIVE
    assert messages_of(paused) == ["Paused: spring."]
    assert messages_of(resumed) == ["Resumed: spring."]
    events = CampaignEvent.objects.filter(campaign=campaign).order_by("id")
    assert [(e.source, e.target, e.actor) for e in events] == [
        ("active", "paused", "staff:admin"),
        ("paused", "active", "staff:admin"),
    ]


def test_staff_pause_in_their_own_name(staff_client: Client) -> None:
    # given
    campaign = CampaignFactory()
    # when
    action(staff_client, CAMPAIGNS, "pause", campaign.pk)
    # then
    event = CampaignEvent.objects.get(campaign=campaign)
    assert (event.target, event.actor) == ("paused", "staff:clerk")


def test_an_ended_campaign_cannot_be_resumed(admin_client: Client) -> None:
    # given
    campaign = CampaignFactory(slug="spring")
    action(admin_client, CAMPAIGNS, "end", campaign.pk)
    # when
    response = action(admin_client, CAMPAIGNS, "resume", campaign.pk)
    # then
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ENDED
    assert messages_of(response) == ["Refused: spring: An ended campaign cannot be reopened."]
    assert CampaignEvent.objects.filter(campaign=campaign).count() == 1


def test_campaign_page_shows_events_and_keeps_money_read_only(admin_client: Client) -> None:
    # given
    campaign = CampaignFactory(budget_total=10_000_000, budget_spent=4200)
    action(admin_client, CAMPAIGNS, "pause", campaign.pk)
    # when
    response = admin_client.get(f"{CAMPAIGNS}{campaign.pk}/change/")
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "staff:admin" in html
    assert "0 orders waiting" in html
    for field in ["status", "coupons_issued", "budget_total", "budget_held", "budget_spent"]:
        assert f'name="{field}"' not in html
    assert 'name="events-0-actor"' not in html
    assert 'name="name"' in html


def test_campaign_events_list(admin_client: Client) -> None:
    # given
    campaign = CampaignFactory(slug="spring")
    action(admin_client, CAMPAIGNS, "pause", campaign.pk)
    event = CampaignEvent.objects.get(campaign=campaign)
    # when
    listing = admin_client.get("/admin/coupons/campaignevent/")
    page = admin_client.get(f"/admin/coupons/campaignevent/{event.pk}/change/")
    # then
    assert listing.status_code == page.status_code == 200
    assert '<td class="field-actor">staff:admin</td>' in listing.content.decode()
    assert admin_client.get("/admin/coupons/campaignevent/add/").status_code == 403


def test_coupon_list_search_and_filters(admin_client: Client, chatbot: ApiClient) -> None:
    # given
    spring, summer = CampaignFactory(slug="spring"), CampaignFactory(slug="summer")
    ann = claim(chatbot, spring, "ann")
    bob = claim(chatbot, spring, "bob")
    ann_summer = claim(chatbot, summer, "ann")
    Coupon.objects.filter(pk=bob.pk).update(status=Coupon.Status.REDEEMED)

    def codes(**query: object) -> set[str]:
        return {c.code for c in admin_client.get(COUPONS, query).context["cl"].result_list}

    # when / then
    assert codes() == {ann.code, bob.code, ann_summer.code}
    assert codes(q="ann") == {ann.code, ann_summer.code}
    assert codes(q=bob.code.lower()) == {bob.code}
    assert codes(q="an") == set()  # exact matches only: an index serves them
    assert codes(status__exact="redeemed") == {bob.code}
    assert codes(campaign__id__exact=summer.pk) == {ann_summer.code}
    html = admin_client.get(COUPONS).content.decode()
    assert '<td class="field-customer_id">bob</td>' in html


def test_coupons_are_read_only(admin_client: Client, chatbot: ApiClient) -> None:
    # given
    coupon = claim(chatbot, CampaignFactory(), "ann")
    # when
    page = admin_client.get(f"{COUPONS}{coupon.pk}/change/")
    edit = admin_client.post(f"{COUPONS}{coupon.pk}/change/", {"customer_id": "eve"})
    # then
    coupon.refresh_from_db()
    assert page.status_code == 200
    assert coupon.code in page.content.decode()
    assert 'name="customer_id"' not in page.content.decode()
    assert edit.status_code == 403
    assert coupon.customer_id == "ann"
    assert admin_client.get(f"{COUPONS}add/").status_code == 403
    assert admin_client.get(f"{COUPONS}{coupon.pk}/delete/").status_code == 403


def test_editing_a_campaign_keeps_the_coupons_claimed_meanwhile(
    admin_client: Client, chatbot: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the admin read the campaign, then a customer claimed a coupon before it saved
    campaign = CampaignFactory(slug="spring", name="Spring")
    stale = Campaign.objects.get(pk=campaign.pk)
    monkeypatch.setattr(CampaignAdmin, "get_object", lambda *args, **kwargs: stale)
    claim(chatbot, campaign, "ann")
    local = {
        name: timezone.localtime(getattr(campaign, name))
        for name in ["starts_at", "ends_at", "coupon_valid_until"]
    }
    form = {
        f"{name}_{i}": value
        for name, at in local.items()
        for i, value in enumerate([at.strftime("%Y-%m-%d"), at.strftime("%H:%M:%S")])
    }
    # when
    response = admin_client.post(
        f"{CAMPAIGNS}{campaign.pk}/change/",
        {
            "slug": "spring",
            "name": "Spring, extended",
            "per_customer_limit": 2,
            **form,
            "events-TOTAL_FORMS": 0,
            "events-INITIAL_FORMS": 0,
        },
    )
    # then
    campaign.refresh_from_db()
    assert response.status_code == 302
    assert (campaign.name, campaign.per_customer_limit) == ("Spring, extended", 2)
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 1


def test_a_campaign_added_in_the_admin_gets_its_coupon_slices(admin_client: Client) -> None:
    # given
    now = timezone.localtime()
    when = {
        f"{name}_{i}": value
        for name, at in {
            "starts_at": now,
            "ends_at": now + timedelta(days=2),
            "coupon_valid_until": now + timedelta(days=3),
        }.items()
        for i, value in enumerate([at.strftime("%Y-%m-%d"), at.strftime("%H:%M:%S")])
    }
    # when
    response = admin_client.post(
        f"{CAMPAIGNS}add/",
        {
            "slug": "autumn",
            "name": "Autumn",
            **when,
            "coupon_kind": "free_order",
            "max_discount": 2500,
            "currency": "CNY",
            "per_customer_limit": 1,
            "backlog_ceiling": "",
            "coupons_total": 100,
            "budget_total": 250_000,
            "events-TOTAL_FORMS": 0,
            "events-INITIAL_FORMS": 0,
        },
    )
    # then: created (the deferred check of its slices passed), 100 coupons over its slices
    assert response.status_code == 302, response.content.decode()[:2000]
    campaign = Campaign.objects.get(slug="autumn")
    caps = list(CouponSlice.objects.filter(campaign=campaign).values_list("cap", flat=True))
    assert (len(caps), sum(caps)) == (16, 100)
    page = admin_client.get(f"{CAMPAIGNS}{campaign.pk}/change/")
    assert "0 / 100" in admin_client.get(CAMPAIGNS).content.decode()
    assert page.status_code == 200
