"""What the OpenAPI schema says about campaigns and coupons (texts and examples)."""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiRequest

from coupons.api.serializers import CampaignOut, CouponClaimIn, CouponListOut, CouponOut
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

CAMPAIGN_EXAMPLE = {
    "slug": "spring-free-order",
    "name": "Spring free order",
    "status": "active",
    "starts_at": "2026-11-29T16:00:00+00:00",
    "ends_at": "2026-12-29T16:00:00+00:00",
    "coupon_valid_until": "2026-12-29T16:00:00+00:00",
    "coupon": {"kind": "free_order", "max_discount": 2500, "currency": "CNY"},
    "per_customer_limit": 1,
    "coupons_total": 1000000,
    "coupons_remaining": 987654,
    "budget_total": 300000000000,
    "budget_remaining": 299969000000,
    "livemode": True,
    "backlog": {"orders_waiting": 4321, "estimated_wait_seconds": 12},
}
COUPON_EXAMPLE = {
    "code": "AWSYY3YS7WWP",
    "campaign": "spring-free-order",
    "customer_id": "c-42",
    "status": "issued",
    "max_discount": 2500,
    "currency": "CNY",
    "valid_until": "2026-12-29T16:00:00+00:00",
}

# Django's `slug` path converter: anything else matches no route, and is answered 404.
SLUG = OpenApiParameter(
    "slug",
    {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$"},
    OpenApiParameter.PATH,
    description="The campaign's slug.",
)

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    IDEMPOTENCY_KEY,
    location=OpenApiParameter.HEADER,
    required=True,
    description="1-255 characters, one per claim you mean to make; a replay returns the first "
    "answer (the same coupon, 201 again), never a second coupon.",
    examples=[OpenApiExample("claim-c-42-1", value="claim-c-42-1")],
)

CAMPAIGN_NOT_ACTIVE = Code(
    "campaign_not_active",
    "The campaign is paused, has ended or has not started.",
    TELL,
    "The campaign is not active.",
)
LIMIT_REACHED = Code(
    "limit_reached",
    "The shopper already holds `per_customer_limit` coupons of this campaign.",
    TELL,
    "This customer already holds the campaign's coupons.",
)
SOLD_OUT = Code("sold_out", "Every coupon of the campaign is issued.", TELL, "Sold out.")
KEY_REUSED = Code(
    "idempotency_key_reused",
    "This Idempotency-Key was used before with a different body.",
    FIX + " A new claim needs a new key.",
    "This Idempotency-Key was already used with a different request body.",
)

CAMPAIGN_LIST = {
    "operation_id": "campaigns_list",
    "summary": "List campaigns",
    "description": (
        "Every campaign (at most 100), with its terms, what is left and how long its line is. "
        "`status` is `scheduled`, `active`, `paused` or `ended`; only an active campaign "
        "issues coupons and takes orders with them. Money is in fen. A `free_order` coupon "
        "takes `min(order subtotal, max_discount)` off one order. `backlog` is the campaign's "
        "line right now: worth telling a shopper before they order at a peak."
    ),
    "parameters": common_parameters(),
    "responses": {
        200: ok_response(
            CampaignOut(many=True), "The campaigns.", CAMPAIGN_EXAMPLE
        ),  # shown in a list
        **common_errors(),
    },
}

CAMPAIGN_DETAIL = {
    "operation_id": "campaigns_retrieve",
    "summary": "Get a campaign",
    "description": (
        "One campaign by its slug: terms, coupons and budget remaining "
        "(`coupons_remaining` = total - issued; `budget_remaining` = total - held by orders "
        "in flight - spent), and its line (`backlog`)."
    ),
    "parameters": [SLUG, *common_parameters()],
    "responses": {
        200: ok_response(CampaignOut, "The campaign.", CAMPAIGN_EXAMPLE),
        **common_errors(),
    },
}

COUPON_CLAIM = {
    "operation_id": "coupons_claim",
    "summary": "Issue a coupon to a shopper",
    "description": (
        "Issues one of the campaign's coupons to `customer_id` and answers it, `201`. Send "
        "the same Idempotency-Key and body again (after a time-out, a lost answer, a 429) and "
        "you get the same coupon and `201` again; never a second coupon. The per-customer "
        "limit holds also under concurrent claims. Use the coupon's `code` as `coupon_code` "
        "when placing the order."
    ),
    "parameters": [IDEMPOTENCY_HEADER, SLUG, *rate_limited_parameters()],
    "request": OpenApiRequest(
        CouponClaimIn,
        examples=[
            OpenApiExample("a shopper", value={"customer_id": "c-42"}, request_only=True),
        ],
    ),
    "responses": {
        201: ok_response(
            CouponOut, "Issued (or the replay of an earlier claim).", COUPON_EXAMPLE, 201
        ),
        409: error_response(409, LIMIT_REACHED, CAMPAIGN_NOT_ACTIVE),
        410: error_response(410, SOLD_OUT),
        422: error_response(422, KEY_REUSED),
        **common_errors(),
    },
}

CUSTOMER_COUPONS = {
    "operation_id": "customers_coupons_list",
    "summary": "List a shopper's coupons",
    "description": (
        "The coupons this client issued to the shopper (at most 200), each `issued` (usable), "
        "`reserved` (held by an order in flight), `redeemed` (used by a paid order) or "
        "`expired`. A coupon held by an order that then fails or is cancelled is `issued` "
        "again."
    ),
    "parameters": [
        OpenApiParameter(
            "customer_id",
            {"type": "string", "pattern": CUSTOMER_ID_RE.pattern, "maxLength": 64},
            OpenApiParameter.PATH,
            description=CUSTOMER_ID_HELP,
            examples=[OpenApiExample("c-42", value="c-42")],
        ),
        *common_parameters(),
    ],
    "responses": {
        200: ok_response(CouponListOut, "The shopper's coupons.", {"results": [COUPON_EXAMPLE]}),
        **common_errors(),
    },
}
