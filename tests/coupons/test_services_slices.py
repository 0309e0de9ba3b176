"""Coupon slices (coupons.services): a campaign's coupon counter split over COUPON_SLICES
rows whose caps sum to its total; the claim as one statement; the stock raised or lowered."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django.fixtures import Settings

from coupons import services
from coupons.errors import SoldOut
from coupons.models import Campaign, Coupon, CouponSlice
from coupons.selectors import campaign_coupons_issued, campaigns_with_issued
from infra.errors import IdempotencyKeyReused, InvalidInput
from shop.models import ApiClient, AuditEntry
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim
from tests.factories.shop import ApiClientFactory

pytestmark = pytest.mark.django_db


def slices_of(campaign: Campaign) -> list[tuple[int, int, int]]:
    return list(
        CouponSlice.objects.filter(campaign=campaign)
        .order_by("number")
        .values_list("number", "issued", "cap")
    )


def test_a_new_campaign_has_its_slices_with_caps_summing_to_the_total() -> None:
    # given / when
    campaign = CampaignFactory(coupons_total=1000)
    # then: 16 slices of 62 or 63, nothing issued
    slices = slices_of(campaign)
    assert [n for n, _, _ in slices] == list(range(settings.COUPON_SLICES))
    assert sum(cap for _, _, cap in slices) == 1000
    assert {cap for _, _, cap in slices} == {62, 63}
    assert all(issued == 0 for _, issued, _ in slices)
    assert campaigns_with_issued().get(pk=campaign.pk).coupons_remaining == 1000


def test_coupons_issued_is_the_sum_of_the_slices(chatbot: ApiClient) -> None:
    # given
    campaign = CampaignFactory(coupons_total=5)
    # when
    for n in range(3):
        claim(chatbot, campaign, f"c-{n}")
    # then
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 3
    assert sum(issued for _, issued, _ in slices_of(campaign)) == 3
    assert campaigns_with_issued().get(pk=campaign.pk).coupons_remaining == 2


def test_a_replayed_key_with_another_body_takes_nothing_from_the_slices(
    chatbot: ApiClient,
) -> None:
    # given: a coupon claimed with key "k"
    campaign = CampaignFactory(coupons_total=10)
    services.coupon_claim(
        client_id=chatbot.pk, slug=campaign.slug, customer_id="c-1", idempotency_key="k"
    )
    # when: the same key for another customer (its insert meets the unique key)
    with pytest.raises(IdempotencyKeyReused):
        services.coupon_claim(
            client_id=chatbot.pk, slug=campaign.slug, customer_id="c-2", idempotency_key="k"
        )
    # then: the slice taken for it was given back with the failed insert
    assert Coupon.objects.count() == 1
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 1


def test_every_slice_is_found_when_it_is_the_only_one_with_room(chatbot: ApiClient) -> None:
    # given: a campaign whose slices hold one coupon each
    campaign = CampaignFactory(coupons_total=settings.COUPON_SLICES, per_customer_limit=99)
    for number in range(settings.COUPON_SLICES):
        # when: every other slice is full, and only `number` has its coupon left
        CouponSlice.objects.filter(campaign=campaign).update(issued=1)
        CouponSlice.objects.filter(campaign=campaign, number=number).update(issued=0)
        # then: a claim takes it, wherever the claim started looking
        claim(chatbot, campaign, f"c-{number}")
        assert slices_of(campaign)[number] == (number, 1, 1)
    with pytest.raises(SoldOut):
        claim(chatbot, campaign, "late")


def test_raising_the_stock_spreads_the_new_room_over_the_slices(chatbot: ApiClient) -> None:
    # given: 20 coupons, 20 issued (sold out)
    campaign = CampaignFactory(coupons_total=20, per_customer_limit=99)
    for _ in range(20):
        claim(chatbot, campaign, "c-1")
    with pytest.raises(SoldOut):
        claim(chatbot, campaign, "c-1")
    before = slices_of(campaign)
    # when
    services.campaign_totals_change(campaign_id=campaign.pk, coupons_total=52, actor="t")
    # then: each slice keeps what it issued and the 32 new coupons are shared out
    after = slices_of(campaign)
    assert [issued for _, issued, _ in after] == [issued for _, issued, _ in before]
    assert [cap - issued for _, issued, cap in after] == [2] * 16
    assert Campaign.objects.get(pk=campaign.pk).coupons_total == 52
    claim(chatbot, campaign, "c-1")
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 21
    entry = AuditEntry.objects.get(action="campaign.totals")
    assert (entry.before, entry.after) == ({"coupons_total": 20}, {"coupons_total": 52})


def test_lowering_the_stock_to_the_coupons_issued_sells_it_out(chatbot: ApiClient) -> None:
    # given: 100 coupons, 7 issued
    campaign = CampaignFactory(coupons_total=100)
    for n in range(7):
        claim(chatbot, campaign, f"c-{n}")
    # when
    services.campaign_totals_change(campaign_id=campaign.pk, coupons_total=7, actor="t")
    # then
    assert all(issued == cap for _, issued, cap in slices_of(campaign))
    with pytest.raises(SoldOut):
        claim(chatbot, campaign, "late")


def test_the_stock_cannot_go_below_the_coupons_issued(chatbot: ApiClient) -> None:
    # given
    campaign = CampaignFactory(coupons_total=100)
    for n in range(7):
        claim(chatbot, campaign, f"c-{n}")
    before = slices_of(campaign)
    # when
    with pytest.raises(InvalidInput) as refused:
        services.campaign_totals_change(campaign_id=campaign.pk, coupons_total=6, actor="t")
    # then
    assert refused.value.extra["fields"] == {
        "coupons_total": ["7 coupons are already issued; the total cannot be 6."]
    }
    assert slices_of(campaign) == before
    assert Campaign.objects.get(pk=campaign.pk).coupons_total == 100
    assert not AuditEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_campaign_cannot_commit_without_slices_summing_to_its_total() -> None:
    # given
    campaign = CampaignFactory(coupons_total=10)
    now = timezone.now()
    # when / then: a campaign without slices, and caps out of step with the total, fail
    # their commit (the deferred constraint trigger), whatever the Python did
    with pytest.raises(IntegrityError, match="caps sum to 0"), transaction.atomic():
        Campaign.objects.create(
            slug="bare",
            name="bare",
            starts_at=now,
            ends_at=now + timedelta(days=1),
            coupon_valid_until=now,
            max_discount=1,
            coupons_total=5,
            budget_total=1,
        )
    with pytest.raises(IntegrityError, match="caps sum to"), transaction.atomic():
        Campaign.objects.filter(pk=campaign.pk).update(coupons_total=11)
    with pytest.raises(IntegrityError, match="caps sum to"), transaction.atomic():
        CouponSlice.objects.filter(campaign=campaign, number=0).update(cap=0)
    assert not Campaign.objects.filter(slug="bare").exists()
    assert sum(cap for _, _, cap in slices_of(campaign)) == 10


@pytest.mark.django_db(transaction=True)
def test_a_new_claim_is_one_statement_in_autocommit(settings: Settings) -> None:
    # given: the campaign's terms in this process's copy (as after any earlier claim)
    settings.INTAKE_CACHE_SECONDS = 60.0
    client = ApiClientFactory()
    campaign = CampaignFactory(coupons_total=10)
    claim(client, campaign, "warm-up")
    # when
    with CaptureQueriesContext(connection) as queries:
        coupon = services.coupon_claim(
            client_id=client.pk,
            slug=campaign.slug,
            customer_id="c-1",
            idempotency_key=uuid.uuid4().hex,
        ).coupon
    # then: one round trip, which took a slice and inserted the coupon
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert queries[0]["sql"].lstrip().startswith("WITH campaign AS")
    assert Coupon.objects.get(pk=coupon.pk).customer_id == "c-1"
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 2
