import re

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import (
    CUSTOMER_ID_HELP,
    CUSTOMER_ID_RE,
    client_id,
    parse,
    require_idempotency_key,
)
from config.schema import ERRORS, ErrorOut
from coupons import selectors, services
from coupons.api.serializers import (
    CampaignOut,
    CouponClaimIn,
    CouponListOut,
    CouponOut,
    campaign_document,
    coupon_document,
)

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    location=OpenApiParameter.HEADER,
    required=True,
    description="1-255 characters; a replay returns the first answer.",
)


class CampaignListApi(APIView):
    @extend_schema(responses={200: CampaignOut(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(
            [
                campaign_document(c, backlog=selectors.campaign_backlog(campaign_id=c.pk))
                for c in selectors.campaign_list()[:100]
            ]
        )


class CampaignDetailApi(APIView):
    @extend_schema(responses={200: CampaignOut, **ERRORS})
    def get(self, request: Request, slug: str) -> Response:
        campaign = selectors.campaign_get(slug=slug)
        return Response(
            campaign_document(campaign, backlog=selectors.campaign_backlog(campaign_id=campaign.pk))
        )


class CouponClaimApi(APIView):
    @extend_schema(
        request=CouponClaimIn,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: CouponOut, 409: ErrorOut, 410: ErrorOut, 422: ErrorOut, **ERRORS},
    )
    def post(self, request: Request, slug: str) -> Response:
        key = require_idempotency_key(request)
        data = parse(CouponClaimIn, request.data)
        claim = services.coupon_claim(
            client_id=client_id(request),
            slug=slug,
            customer_id=data["customer_id"],
            idempotency_key=key,
        )
        # A replay answers exactly as the first request did (API.md): 201 again.
        return Response(coupon_document(claim.coupon, campaign_slug=slug), status=201)


class CustomerCouponListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "customer_id", str, OpenApiParameter.PATH, description=CUSTOMER_ID_HELP
            )
        ],
        responses={200: CouponListOut, **ERRORS},
    )
    def get(self, request: Request, customer_id: str) -> Response:
        if not re.fullmatch(CUSTOMER_ID_RE, customer_id):
            raise exceptions.ValidationError({"customer_id": [CUSTOMER_ID_HELP]})
        coupons = selectors.coupon_list_for_customer(
            client_id=client_id(request), customer_id=customer_id
        )
        return Response(
            {"results": [coupon_document(c, campaign_slug=c.campaign.slug) for c in coupons[:200]]}
        )
