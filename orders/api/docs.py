"""What the OpenAPI schema says about orders (texts and examples)."""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiRequest

from infra.contract import CUSTOMER_ID_HELP, CUSTOMER_ID_RE
from infra.schema import (
    FIX,
    IDEMPOTENCY_KEY,
    TELL,
    Code,
    common_errors,
    common_parameters,
    error_response,
    ok_response,
    rate_limited_parameters,
)
from orders.api.serializers import OrderOut, OrderPageOut, OrderPlaceIn

ORDER_ID = "0b6c7c6e-5d0c-4f55-9a37-9d1f4a0d8a11"


def order_example(status: str, *, position: int = 0, wait: int = 0) -> dict[str, object]:
    return {
        "id": ORDER_ID,
        "status": status,
        "reason": None,
        "customer_id": "c-42",
        "items": [{"sku": "TM-MILKTEA-L", "quantity": 2, "unit_price": 1800}],
        "subtotal": 3600,
        "discount": 2500,
        "payable": 1100,
        "currency": "CNY",
        "coupon_code": "AWSYY3YS7WWP",
        "livemode": True,
        "created_at": "2026-11-29T17:00:00+00:00",
        "updated_at": "2026-11-29T17:00:01+00:00",
        "queue": {"position": position, "estimated_wait_seconds": wait},
    }


STATUSES = (
    "Statuses: `received` (in line for a worker), `reserved` (stock, coupon and budget held; "
    "payment under way), and the terminal ones: `paid`, `rejected` (with `reason`: "
    "`sold_out`, `out_of_stock`, `coupon_invalid`, `coupon_expired`, `coupon_in_use`, "
    "`limit_reached`, `budget_exhausted`, `campaign_not_active`), `payment_failed`, "
    "`cancelled`, `expired`, `refunded`. Money is in fen."
)

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    IDEMPOTENCY_KEY,
    location=OpenApiParameter.HEADER,
    required=True,
    description="1-255 characters, one per order you mean to place; a replay returns the same "
    "order (200, with its current status), never a second one.",
    examples=[OpenApiExample("order-c-42-1", value="order-c-42-1")],
)

LOCATION = OpenApiParameter(
    "Location",
    {"type": "string", "format": "uri-reference"},
    OpenApiParameter.HEADER,
    response=[202, 200],
    required=True,
    description="The order's URL, `/api/v1/orders/{id}/`.",
)

SOLD_OUT = Code(
    "sold_out",
    "A product has no stock left; nothing was stored.",
    TELL,
    "TM-MILKTEA-L is sold out.",
)
OUT_OF_STOCK = Code(
    "out_of_stock",
    "Less stock than asked for a product; nothing was stored.",
    TELL + " A smaller quantity may succeed.",
    "Only 1 of TM-MILKTEA-L left.",
)
BUDGET_EXHAUSTED = Code(
    "budget_exhausted",
    "The campaign's budget cannot cover this order's discount; nothing was stored.",
    TELL + " The order may be placed without the coupon.",
    "The campaign's budget is exhausted.",
)
CAMPAIGN_NOT_ACTIVE = Code(
    "campaign_not_active",
    "The coupon's campaign is paused, has ended or has not started; nothing was stored.",
    TELL,
    "The campaign is not active.",
)
KEY_REUSED = Code(
    "idempotency_key_reused",
    "This Idempotency-Key was used before with a different body.",
    FIX + " A new order needs a new key.",
    "This Idempotency-Key was already used with a different request body.",
)
NOT_CANCELLABLE = Code(
    "not_cancellable",
    "The order is paid or otherwise final, or a charge for it is in flight (its outcome "
    "decides: poll the order).",
    TELL,
    "The order is paid.",
)
UNKNOWN_SKU = Code(
    "invalid",
    "Malformed input; `fields` names each problem: an unknown SKU, a SKU listed twice, a "
    "quantity outside 1-99, more than 20 lines, an unknown field, a string or float where an "
    "integer belongs, a callback URL that is not https or names a private host, a missing "
    "Idempotency-Key. Without `fields`: the front door could not read the request as HTTP.",
    FIX,
    "Unknown SKU: TM-NOPE.",
    {"fields": {"items": ["Unknown SKU 'TM-NOPE'."]}},
)

ORDER_PLACE = {
    "operation_id": "orders_place",
    "summary": "Place an order",
    "description": (
        "Stores the order and puts it in line: `202` with the order `received`, its place in "
        "line (`queue.position`, orders ahead of it, itself included) and an estimated wait "
        "from the measured drain rate, and a `Location` header. Then follow it with "
        "`GET /api/v1/orders/{id}/` or by callback: with `callback_url`, each status change "
        "is POSTed there, signed with `X-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "
        '"<t>.<body>">` under the client\'s webhook secret (one `v1` per valid secret while '
        "it is rotated: accept any), with `X-Event-Id` (one per change, repeated by a "
        "redelivery), `X-Delivery-Id` (one per attempt) and `X-Event-Time` (when it changed), "
        "and retried with backoff for at least 24 hours.\n\n"
        "Idempotency: the same key and body again answers the same order, `200`, with its "
        "current status; after a time-out or a lost answer, always retry with the same key.\n\n"
        "An order that cannot succeed whatever the wait is answered at once and nothing is "
        "stored (`409`, `410`); the worker checks everything again under locks, so an accepted "
        "order can still end `rejected`. " + STATUSES
    ),
    "parameters": [IDEMPOTENCY_HEADER, LOCATION, *rate_limited_parameters()],
    "request": OpenApiRequest(
        OrderPlaceIn,
        examples=[
            OpenApiExample(
                "with a coupon and a callback",
                value={
                    "customer_id": "c-42",
                    "items": [{"sku": "TM-MILKTEA-L", "quantity": 2}],
                    "coupon_code": "AWSYY3YS7WWP",
                    "callback_url": "https://bot.example.com/hooks/orders",
                },
                request_only=True,
            ),
            OpenApiExample(
                "without a coupon",
                value={"customer_id": "c-42", "items": [{"sku": "TM-MILKTEA-L", "quantity": 1}]},
                request_only=True,
            ),
        ],
    ),
    "responses": {
        202: ok_response(
            OrderOut,
            "Stored and in line. `Location` is the order's URL.",
            order_example("received", position=1234, wait=9),
            202,
        ),
        200: ok_response(
            OrderOut,
            "A replay of the same key and body: the same order, as it is now.",
            order_example("paid"),
        ),
        409: error_response(409, OUT_OF_STOCK, BUDGET_EXHAUSTED, CAMPAIGN_NOT_ACTIVE),
        410: error_response(410, SOLD_OUT),
        422: error_response(422, KEY_REUSED),
        **common_errors(invalid=UNKNOWN_SKU),
    },
}

ORDER_LIST = {
    "operation_id": "orders_list",
    "summary": "List orders",
    "description": (
        "This client's orders, newest first, 50 a page (follow `next`), optionally only one "
        "shopper's. Each carries its current status and place in line. " + STATUSES
    ),
    "parameters": [
        OpenApiParameter(
            "customer_id",
            {"type": "string", "pattern": CUSTOMER_ID_RE.pattern, "maxLength": 64},
            description="Only this customer's orders. " + CUSTOMER_ID_HELP,
            examples=[OpenApiExample("c-42", value="c-42")],
        ),
        OpenApiParameter("cursor", str, description="From a page's `next` or `previous`."),
        *common_parameters(),
    ],
    "responses": {
        200: ok_response(
            OrderPageOut,
            "A page of orders.",
            {"next": None, "previous": None, "results": [order_example("paid")]},
        ),
        **common_errors(),
    },
}

ORDER_DETAIL = {
    "operation_id": "orders_retrieve",
    "summary": "Get an order",
    "description": (
        "One of this client's orders with its current status and, while it is `received`, its "
        "place in line and estimated wait (both 0 once a worker took it). Another client's "
        "order is `404` like a missing one. Polling this is always correct; callbacks only "
        "make it unnecessary. " + STATUSES
    ),
    "parameters": common_parameters(),
    "responses": {
        200: ok_response(OrderOut, "The order.", order_example("received", position=12, wait=1)),
        **common_errors(),
    },
}

ORDER_CANCEL = {
    "operation_id": "orders_cancel",
    "summary": "Cancel an order",
    "description": (
        "Cancels an order that is not yet paid: `200` with the order `cancelled`, and "
        "everything it held (stock, coupon, budget) released. Cancelling a cancelled order "
        "answers the same. A paid or otherwise final order cannot be cancelled (`409`); a paid "
        "one can only be refunded by staff."
    ),
    "parameters": rate_limited_parameters(),
    "request": None,
    "responses": {
        200: ok_response(OrderOut, "Cancelled.", order_example("cancelled")),
        409: error_response(409, NOT_CANCELLABLE),
        **common_errors(),
    },
}
