from django.utils import timezone
from rest_framework import serializers

from coupons.models import Campaign, Coupon
from infra.api import StrictSerializer, customer_id_field
from infra.contract import CUSTOMER_ID_RE
from infra.schema import QueueOut


class CouponTermsOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Campaign.CouponKind.choices)
    max_discount = serializers.IntegerField(help_text="In fen.")
    currency = serializers.CharField()


class BacklogOut(serializers.Serializer):
    orders_waiting = serializers.IntegerField()
    estimated_wait_seconds = serializers.IntegerField()


class CampaignOut(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Campaign.PublicStatus.choices)
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    coupon_valid_until = serializers.DateTimeField()
    coupon = CouponTermsOut()
    per_customer_limit = serializers.IntegerField()
    coupons_total = serializers.IntegerField()
    coupons_remaining = serializers.IntegerField()
    budget_total = serializers.IntegerField(help_text="In fen.")
    budget_remaining = serializers.IntegerField(help_text="In fen: total - held - spent.")
    livemode = serializers.BooleanField(
        help_text="false: a test campaign, seen and ordered from by test keys (cop_test_...) "
        "only (docs/integrator-guide.md, Test mode)."
    )
    backlog = BacklogOut()


def campaign_document(
    campaign: Campaign, *, backlog: QueueOut | dict[str, int]
) -> dict[str, object]:
    return {
        "slug": campaign.slug,
        "name": campaign.name,
        "status": campaign.status_at(timezone.now()),
        "starts_at": campaign.starts_at.isoformat(),
        "ends_at": campaign.ends_at.isoformat(),
        "coupon_valid_until": campaign.coupon_valid_until.isoformat(),
        "coupon": {
            "kind": campaign.coupon_kind,
            "max_discount": campaign.max_discount,
            "currency": campaign.currency,
        },
        "per_customer_limit": campaign.per_customer_limit,
        "coupons_total": campaign.coupons_total,
        "coupons_remaining": campaign.coupons_remaining,
        "budget_total": campaign.budget_total,
        "budget_remaining": campaign.budget_remaining,
        "livemode": campaign.livemode,
        "backlog": backlog,
    }


class CouponClaimIn(StrictSerializer):
    customer_id = customer_id_field()


def coupon_claim_plain(data: object) -> dict[str, str] | None:
    """The common claim body checked by hand: what CouponClaimIn would return for it, or None
    for anything else (then CouponClaimIn judges it and explains what is wrong). As with the
    order's (orders.api.serializers.order_place_plain), building the serializer cost more
    than the check; this accepts nothing CouponClaimIn refuses (docs/performance.md, "The
    web layer on the hot endpoints")."""
    if not isinstance(data, dict) or len(data) != 1:
        return None
    customer_id = data.get("customer_id")
    if isinstance(customer_id, str) and CUSTOMER_ID_RE.fullmatch(customer_id):
        return {"customer_id": customer_id}
    return None


class CouponOut(serializers.Serializer):
    code = serializers.CharField()
    campaign = serializers.SlugField()
    customer_id = serializers.CharField()
    status = serializers.ChoiceField(choices=Coupon.Status.choices)
    max_discount = serializers.IntegerField(help_text="In fen.")
    currency = serializers.CharField()
    valid_until = serializers.DateTimeField()


class CouponListOut(serializers.Serializer):
    results = CouponOut(many=True)


def coupon_document(coupon: Coupon, *, campaign_slug: str) -> dict[str, object]:
    return {
        "code": coupon.code,
        "campaign": campaign_slug,
        "customer_id": coupon.customer_id,
        "status": coupon.status_at(timezone.now()),
        "max_discount": coupon.max_discount,
        "currency": coupon.currency,
        "valid_until": coupon.valid_until.isoformat(),
    }
