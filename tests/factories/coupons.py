from datetime import timedelta

import factory
from django.utils import timezone

from coupons.models import Campaign


class CampaignFactory(factory.django.DjangoModelFactory):
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
