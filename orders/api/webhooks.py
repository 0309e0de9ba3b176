"""The callback (docs/integrator-guide.md, "Callbacks") as an OpenAPI 3.1 webhook: the POST
this service sends to an order's `callback_url`, seen from the chatbot's side (the request is
ours, the answers are the chatbot's). Listed in SPECTACULAR_SETTINGS["WEBHOOKS"].

Written as the operation itself, not through `extend_schema`: drf-spectacular leaves a
webhook's parameters out, and the headers are most of what a receiver must know. The body is
the order document (`OrderOut`, which `GET /api/v1/orders/{id}/` answers too);
tests/orders/test_pipeline_webhook_samples.py checks a real delivery against this.
"""

from drf_spectacular.utils import OpenApiWebhook

from orders.api.docs import order_example


def _header(name: str, schema: dict[str, object], description: str, example: str) -> dict:
    return {
        "name": name,
        "in": "header",
        "required": True,
        "schema": schema,
        "description": description,
        "example": example,
    }


HEADERS = [
    _header(
        "X-Signature",
        {"type": "string", "pattern": r"^t=[0-9]+(,v1=[0-9a-f]{64})+$"},
        '`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`, keyed with your '
        "client's webhook secret. While the secret is rotated, one `v1` entry per valid "
        "secret, the old one first: accept the POST when any entry matches the secret you "
        "hold. Refuse a `t` more than five minutes from your clock (a replay). Samples: "
        "docs/samples/verify_webhook.py and docs/samples/verify_webhook.js.",
        "t=1764430000,v1=5f2b7c0e9d1a4b3c8e6f5a2d1c0b9a8e7f6d5c4b3a2918e7d6c5b4a392817f6e",
    ),
    _header(
        "X-Event-Id",
        {"type": "string", "maxLength": 64},
        "The status change: one per change of one order, repeated by every redelivery and "
        "every resend by the operators. The key to deduplicate on. Opaque: do not parse it.",
        "evt_8812345",
    ),
    _header(
        "X-Delivery-Id",
        {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "This POST: new on every attempt, also on a redelivery of the same event.",
        "3f0c9a6e2b7d4e58a1c0d9b6e7f21a34",
    ),
    _header(
        "X-Event-Time",
        {"type": "string", "format": "date-time"},
        "When the status changed (RFC 3339, UTC), not when this POST was sent: after an "
        "outage a POST may come hours later.",
        "2026-12-06T13:12:04.123456Z",
    ),
    {
        **_header(
            "X-Request-ID",
            {"type": "string", "maxLength": 200},
            "The request that placed the order, when it carried one.",
            "req-7f3a",
        ),
        "required": False,
    },
]

ORDER_STATUS_CHANGED = OpenApiWebhook(
    name="orderStatusChanged",
    decorator={
        "post": {
            "summary": "An order's status changed (a callback)",
            "description": (
                "POSTed to the order's `callback_url` at each status change, signed (see "
                "`X-Signature`). When several changes of one order are pending at once, one "
                "POST carries the latest; every terminal status is delivered. An order's "
                "statuses arrive in the order they happened. Anything but a 2xx within five "
                "seconds is retried with backoff for at least 24 hours "
                '(docs/integrator-guide.md, "Callbacks", has the schedule); a delivery may '
                "come more than once: deduplicate on `X-Event-Id`."
            ),
            "operationId": "order_status_changed",
            "tags": ["callbacks"],
            "security": [],
            "parameters": HEADERS,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/OrderOut"},
                        "examples": {
                            "paid": {"value": order_example("paid")},
                        },
                    }
                },
            },
            "responses": {
                "2XX": {"description": "Received: the delivery is done."},
                "default": {
                    "description": "Anything else, or no answer within five seconds: the "
                    "same event is delivered again later (a new `X-Delivery-Id`)."
                },
            },
        }
    },
)
