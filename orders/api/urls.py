from django.urls import path

from orders.api.views import (
    OrderCancelApi,
    OrderDetailApi,
    OrderListCreateApi,
)

urlpatterns = [
    path("orders/", OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<uuid:order_id>/", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<uuid:order_id>/cancel/", OrderCancelApi.as_view(), name="order-cancel"),
]
