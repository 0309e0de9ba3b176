"""Settings of the shop app: API keys and failed authentication, the default rate limits and
the webhook secret's rotation. Gathered by config/settings/base.py."""

import environ

env = environ.Env()

# A rotated webhook secret keeps signing beside the new one for this long (the admin's
# rotation; shop.services.webhook_secret_rotate), so the chatbot can switch without a gap.
WEBHOOK_SECRET_OVERLAP_HOURS = env.float("WEBHOOK_SECRET_OVERLAP_HOURS", default=24.0)
# A revoked key still stops working in every process within CACHE_VERSION_CHECK_SECONDS.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=30.0)
# Failed authentication per source address: a burst, then this many a second; past it, 429.
AUTH_FAILURE_RPS = env.float("AUTH_FAILURE_RPS", default=1.0)
AUTH_FAILURE_BURST = env.int("AUTH_FAILURE_BURST", default=20)
# A key that failed is answered from the process's memory for this long (no database lookup).
AUTH_NEGATIVE_CACHE_SECONDS = env.float("AUTH_NEGATIVE_CACHE_SECONDS", default=5.0)
# Behind a trusted proxy: the META key of the header it appends the client's address to
# (e.g. HTTP_X_FORWARDED_FOR; its last entry is used). Empty: REMOTE_ADDR.
CLIENT_ADDRESS_HEADER = env("CLIENT_ADDRESS_HEADER", default="")

# Defaults per scope, (tokens per second or None for unlimited, burst); staff override them
# at run time in the admin (shop.RateLimit), read by every process within the cache time.
RATE_LIMIT_DEFAULTS = {
    "gateway": (env.float("GATEWAY_RPS", default=1000.0), env.int("GATEWAY_BURST", default=50)),
    # Sized for the story's peak of 833 orders/s: an order costs one POST (its terminal
    # status) when it is paid within CALLBACK_PASSING_DELAY_SECONDS, two (reserved, then
    # paid) when its payment takes longer, as it may at the peak: 1,666/s at most. The
    # burst lets two whole claimed batches (CALLBACK_BATCH_SIZE) go at once.
    "callbacks": (
        env.float("CALLBACK_RPS", default=2000.0),
        env.int("CALLBACK_BURST", default=400),
    ),
    "client_requests": (
        env.float("CLIENT_RPS", default=5000.0),
        env.int("CLIENT_BURST", default=1000),
    ),
    "customer_requests": (
        env.float("CUSTOMER_RPS", default=2.0),
        env.int("CUSTOMER_BURST", default=10),
    ),
}
RATE_LIMIT_CACHE_SECONDS = env.float("RATE_LIMIT_CACHE_SECONDS", default=5.0)
