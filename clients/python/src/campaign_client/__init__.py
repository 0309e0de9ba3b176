"""A client for the campaign order processor's chatbot API v1: typed calls, idempotency keys
made and reused on retry, backoff that honours Retry-After, and webhook verification.
See README.md beside this package."""

from campaign_client.client import CampaignClient, __version__, new_idempotency_key
from campaign_client.errors import (
    ApiError,
    CampaignClientError,
    Conflict,
    IdempotencyKeyReused,
    InvalidRequest,
    NotFound,
    Overloaded,
    ServerError,
    SoldOut,
    TransportFailed,
    Unauthorized,
    WaitTimedOut,
    WebhookVerificationError,
)
from campaign_client.models import (
    Backlog,
    Campaign,
    Coupon,
    CouponStatus,
    CouponTerms,
    Order,
    OrderLine,
    OrderStatus,
    Page,
    Product,
)
from campaign_client.retry import NO_RETRY, RetryPolicy
from campaign_client.webhooks import WebhookEvent, signature_matches, verify_webhook

__all__ = [
    "NO_RETRY",
    "ApiError",
    "Backlog",
    "Campaign",
    "CampaignClient",
    "CampaignClientError",
    "Conflict",
    "Coupon",
    "CouponStatus",
    "CouponTerms",
    "IdempotencyKeyReused",
    "InvalidRequest",
    "NotFound",
    "Order",
    "OrderLine",
    "OrderStatus",
    "Overloaded",
    "Page",
    "Product",
    "RetryPolicy",
    "ServerError",
    "SoldOut",
    "TransportFailed",
    "Unauthorized",
    "WaitTimedOut",
    "WebhookEvent",
    "WebhookVerificationError",
    "__version__",
    "new_idempotency_key",
    "signature_matches",
    "verify_webhook",
]
