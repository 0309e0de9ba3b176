from datetime import timedelta
from typing import Any

import factory
from django.utils import timezone

from coupons import services
from coupons.models import Campaign


class CampaignFactory(factory.django.DjangoModelFactory):
    """A campaign made by `campaign_seed` (not audited), with its coupon slices;
    `coupons_issued=n` counts n coupons as already issued (over the slices, no coupon rows)."""

    class Meta:
        model = Campaign

    slug = factory.Sequence(lambda n: f"campaign-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())
    starts_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    ends_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=1))
    coupon_valid_until = factory.LazyFunction(lambda: timezone.now() + timedelta(days=1))
    max_discount = 2500
    per_customer_limit = 1
    coupons_total = 1000
    budget_total = 10_000_000

    @classmethod
    def _create(cls, model_class: type[Campaign], *args: Any, **kwargs: Any) -> Campaign:
        issued = kwargs.pop("coupons_issued", 0)
        campaign = services.campaign_seed(**kwargs)
        services.coupons_issued_add(campaign_id=campaign.pk, count=issued)
        return campaign
