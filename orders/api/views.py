import re

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from infra.api import (
    StrictCursorPagination,
    client_id,
    livemode,
    parse,
    require_idempotency_key,
)
from orders import selectors, services
from orders.api import docs
from orders.api.serializers import OrderListIn, OrderPlaceIn, order_place_plain
from orders.documents import order_document


class NewestFirst(StrictCursorPagination):
    ordering = "-id"
    page_size = 50
    position_re = re.compile(r"[0-9]{1,18}")  # an order's pk


class OrderListCreateApi(APIView):
    # order_place takes the client's and the customer's tokens itself, in the one Redis call
    # it makes anyway (shop.api.throttling.ChatbotAdmission leaves this view to it).
    admits_itself = True

    @extend_schema(**docs.ORDER_PLACE)
    def post(self, request: Request) -> Response:
        key = require_idempotency_key(request)
        data = order_place_plain(request.data) or parse(OrderPlaceIn, request.data)
        placed = services.order_place(
            client_id=client_id(request),
            customer_id=data["customer_id"],
            items=[services.ItemIn(sku=i["sku"], quantity=i["quantity"]) for i in data["items"]],
            coupon_code=data.get("coupon_code") or "",
            callback_url=data.get("callback_url") or "",
            idempotency_key=key,
            livemode=livemode(request),
        )
        body = order_document(placed.order, lines=placed.lines, queue=placed.queue)
        return Response(
            body,
            status=202 if placed.created else 200,
            headers={"Location": f"/api/v1/orders/{placed.order.public_id}/"},
        )

    @extend_schema(**docs.ORDER_LIST)
    def get(self, request: Request) -> Response:
        query = parse(OrderListIn, request.query_params.dict())
        qs = selectors.order_list(
            client_id=client_id(request),
            customer_id=query.get("customer_id"),
            livemode=livemode(request),
        )
        paginator = NewestFirst()
        page = paginator.paginate_queryset(qs, request, view=self) or []
        return paginator.get_paginated_response(
            [
                order_document(o, lines=o.lines.all(), queue=selectors.order_queue_spot(o))
                for o in page
            ]
        )


class OrderDetailApi(APIView):
    @extend_schema(**docs.ORDER_DETAIL)
    def get(self, request: Request, order_id: str) -> Response:
        order = selectors.order_get(
            client_id=client_id(request), public_id=order_id, livemode=livemode(request)
        )
        lines = selectors.lines_by_order([order.pk])[order.pk]
        return Response(order_document(order, lines=lines, queue=selectors.order_queue_spot(order)))


class OrderCancelApi(APIView):
    @extend_schema(**docs.ORDER_CANCEL)
    def post(self, request: Request, order_id: str) -> Response:
        order = services.order_cancel(
            client_id=client_id(request),
            public_id=order_id,
            actor="client",
            livemode=livemode(request),
        )
        return Response(order_document(order, lines=order.lines.order_by("id")))
