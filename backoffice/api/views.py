"""Campaigns as the chatbot sees them. A campaign's document is coupons' (terms, stock,
budget) with the backlog of its line, which is orders': coupons may not read the line
(orders → coupons → shop), so the layer above both serves it."""

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from coupons import selectors as coupons_selectors
from coupons.api import docs as coupons_docs
from coupons.api.serializers import campaign_document
from infra.api import livemode
from orders import selectors as orders_selectors


class CampaignListApi(APIView):
    @extend_schema(**coupons_docs.CAMPAIGN_LIST)
    def get(self, request: Request) -> Response:
        return Response(
            [
                campaign_document(c, backlog=orders_selectors.campaign_backlog(campaign_id=c.pk))
                for c in coupons_selectors.campaign_list(livemode=livemode(request))[:100]
            ]
        )


class CampaignDetailApi(APIView):
    @extend_schema(**coupons_docs.CAMPAIGN_DETAIL)
    def get(self, request: Request, slug: str) -> Response:
        campaign = coupons_selectors.campaign_get(slug=slug, livemode=livemode(request))
        return Response(
            campaign_document(
                campaign, backlog=orders_selectors.campaign_backlog(campaign_id=campaign.pk)
            )
        )
