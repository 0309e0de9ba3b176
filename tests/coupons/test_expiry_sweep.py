"""The sweep's coupon expiry (coupons.services.coupons_expire): issued coupons past their
validity become expired, and nothing else moves; coupons.sql.COUPONS_EXPIRE reads them from
coupon_issued_until_idx (tests/orders/test_sweep_plans.py checks the plan)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from coupons import services
from coupons.models import Coupon
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim

pytestmark = pytest.mark.django_db


def test_only_issued_coupons_past_their_validity_expire(chatbot) -> None:
    campaign = CampaignFactory(per_customer_limit=1)
    past, still_valid, held = (claim(chatbot, campaign, f"c-{n}") for n in range(3))
    now = timezone.now()
    Coupon.objects.filter(pk__in=[past.pk, held.pk]).update(valid_until=now - timedelta(seconds=1))
    Coupon.objects.filter(pk=held.pk).update(status=Coupon.Status.RESERVED)  # an order holds it

    assert services.coupons_expire(now=now) == 1
    statuses = dict(Coupon.objects.values_list("pk", "status"))
    assert statuses == {
        past.pk: Coupon.Status.EXPIRED,
        still_valid.pk: Coupon.Status.ISSUED,
        held.pk: Coupon.Status.RESERVED,
    }
    assert Coupon.objects.get(pk=past.pk).updated_at == now
    assert services.coupons_expire(now=now) == 0  # a second sweep finds nothing left


def test_a_coupon_expires_at_its_validity_not_before(chatbot) -> None:
    coupon = claim(chatbot, CampaignFactory(), "c-edge")
    assert services.coupons_expire(now=coupon.valid_until - timedelta(microseconds=1)) == 0
    assert services.coupons_expire(now=coupon.valid_until) == 1
    coupon.refresh_from_db()
    assert coupon.status == Coupon.Status.EXPIRED
