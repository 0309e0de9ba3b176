from django.urls import path

from coupons.api.views import (
    CampaignDetailApi,
    CampaignListApi,
    CouponClaimApi,
    CustomerCouponListApi,
)

urlpatterns = [
    path("campaigns/", CampaignListApi.as_view(), name="campaign-list"),
    path("campaigns/<slug:slug>/", CampaignDetailApi.as_view(), name="campaign-detail"),
    path("campaigns/<slug:slug>/claims/", CouponClaimApi.as_view(), name="coupon-claim"),
    path(
        "customers/<str:customer_id>/coupons/",
        CustomerCouponListApi.as_view(),
        name="customer-coupons",
    ),
]
