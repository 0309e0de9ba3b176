from django.urls import path

from coupons.api.views import (
    CouponClaimApi,
    CustomerCouponListApi,
)

urlpatterns = [
    path("campaigns/<slug:slug>/claims/", CouponClaimApi.as_view(), name="coupon-claim"),
    path(
        "customers/<str:customer_id>/coupons/",
        CustomerCouponListApi.as_view(),
        name="customer-coupons",
    ),
]
