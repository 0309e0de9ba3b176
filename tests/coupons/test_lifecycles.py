"""Coupons' lifecycle tables against their one move function, on the real database: every move
the table allows is made (with its event, for campaigns), every other (status, target) pair of
the full product is refused with nothing written.

These test the move functions alone, so each case puts its row straight into the status under
test (an UPDATE) instead of driving it there through the controls.
"""

from __future__ import annotations

import itertools

import pytest
from django.db import transaction

from coupons import selectors, services
from coupons.models import CAMPAIGN_ALLOWED, COUPON_ALLOWED, Campaign, CampaignEvent, Coupon
from coupons.services import holds as coupon_holds
from infra.errors import DomainError
from shop.models import ApiClient
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim

pytestmark = pytest.mark.django_db

CAMPAIGN_STATES = list(Campaign.Status.values)
COUPON_STATES = list(Coupon.Status.values)


def test_every_status_is_a_key_of_its_table() -> None:
    # given / when / then
    assert set(CAMPAIGN_ALLOWED) == set(CAMPAIGN_STATES)
    assert set(COUPON_ALLOWED) == set(COUPON_STATES)


@pytest.mark.parametrize(("source", "target"), itertools.product(CAMPAIGN_STATES, CAMPAIGN_STATES))
def test_campaign_moves(source: str, target: str) -> None:
    # given
    campaign = CampaignFactory()
    Campaign.objects.filter(pk=campaign.pk).update(status=source)
    # when
    with transaction.atomic():
        locked = selectors.campaign_for_update(campaign_id=campaign.pk)
        if target in CAMPAIGN_ALLOWED[source]:
            services.campaign_move(locked, target, actor="test")
        else:
            with pytest.raises(DomainError):
                services.campaign_move(locked, target, actor="test")
    # then
    campaign.refresh_from_db()
    events = list(CampaignEvent.objects.filter(campaign=campaign).values_list("source", "target"))
    if target in CAMPAIGN_ALLOWED[source]:
        assert campaign.status == target
        assert events == [(source, target)]
    else:
        assert campaign.status == source
        assert events == []


def test_an_ended_campaign_is_not_reopened_and_the_same_status_changes_nothing() -> None:
    # given
    ended = CampaignFactory(status=Campaign.Status.ENDED)
    active = CampaignFactory()
    # when
    same = services.campaign_set_status(campaign_id=active.pk, status="active", actor="test")
    # then
    with pytest.raises(DomainError, match=r"An ended campaign cannot be reopened\."):
        services.campaign_set_status(campaign_id=ended.pk, status="active", actor="test")
    assert same.status == Campaign.Status.ACTIVE
    assert not CampaignEvent.objects.exists()


@pytest.mark.parametrize(("source", "target"), itertools.product(COUPON_STATES, COUPON_STATES))
def test_coupon_moves(chatbot: ApiClient, source: str, target: str) -> None:
    # given
    coupon = claim(chatbot, CampaignFactory(), "c-1")
    Coupon.objects.filter(pk=coupon.pk).update(status=source)
    # when
    with transaction.atomic():
        if target in COUPON_ALLOWED[source]:
            coupon_holds._coupons_move([coupon.pk], source, target)
        else:
            with pytest.raises(DomainError):
                coupon_holds._coupons_move([coupon.pk], source, target)
    # then
    coupon.refresh_from_db()
    assert coupon.status == (target if target in COUPON_ALLOWED[source] else source)
