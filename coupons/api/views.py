import re

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from coupons import selectors, services
from coupons.api import docs
from coupons.api.serializers import CouponClaimIn, coupon_claim_plain, coupon_document
from infra.api import (
    CUSTOMER_ID_HELP,
    CUSTOMER_ID_RE,
    client_id,
    livemode,
    parse,
    require_idempotency_key,
)


class CouponClaimApi(APIView):
    @extend_schema(**docs.COUPON_CLAIM)
    def post(self, request: Request, slug: str) -> Response:
        key = require_idempotency_key(request)
        data = coupon_claim_plain(request.data) or parse(CouponClaimIn, request.data)
        claim = services.coupon_claim(
            client_id=client_id(request),
            slug=slug,
            customer_id=data["customer_id"],
            idempotency_key=key,
            livemode=livemode(request),
        )
        # A replay answers exactly as the first request did: 201 again
        # (docs/integrator-guide.md, Idempotency).
        return Response(coupon_document(claim.coupon, campaign_slug=slug), status=201)


class CustomerCouponListApi(APIView):
    @extend_schema(**docs.CUSTOMER_COUPONS)
    def get(self, request: Request, customer_id: str) -> Response:
        if not re.fullmatch(CUSTOMER_ID_RE, customer_id):
            raise exceptions.ValidationError({"customer_id": [CUSTOMER_ID_HELP]})
        coupons = selectors.coupon_list_for_customer(
            client_id=client_id(request), customer_id=customer_id, livemode=livemode(request)
        )
        return Response(
            {"results": [coupon_document(c, campaign_slug=c.campaign.slug) for c in coupons[:200]]}
        )
