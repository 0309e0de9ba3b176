"""The OpenAPI schema's top description (SPECTACULAR_SETTINGS). Plain text, no imports: the
settings read it before Django or DRF are loaded."""

API_DESCRIPTION = """\
Claim campaign coupons and place orders on behalf of shoppers, and follow each order to the
end. This page is the guide: each operation says what it does, gives example requests and
answers, and, for every status, the error codes it can carry and what the chatbot should do.
The repository's `docs/integrator-guide.md` says the same at length.

**Authentication.** `Authorization: Bearer <api key>` on every request. A client sees only
its own orders and coupons. Repeated failed authentications from one address get `429`.

**Conventions.** JSON in and out. Money is an integer number of fen next to
`"currency": "CNY"`. Numbers are JSON integers (`"2"` or `2.0` is a 400). Every error is
`{"error": "<code>", "detail": "<sentence>"}`, plus `fields` on a 400 and `retry_after` on a
429: branch on `error`, never on `detail`.

**What to do with an answer.**
- *Retry with the same Idempotency-Key*: `429 overloaded` (after `Retry-After` seconds), a
  time-out, a dropped connection, a 5xx. The key makes a retry safe: never a second order or
  coupon.
- *Tell the shopper*: `409` and `410` (sold out, limit reached, campaign not active, ...):
  final for this request.
- *Give up and fix the chatbot*: `400`, `401`, `404`, `406`, `415`, `422`.

Answers carry `X-Request-ID`: send your own, or quote ours when asking for help.

**Compatibility.** Within `/api/v1/`, answers may gain fields, operations may gain optional
inputs and statuses, and `status`, `reason` and `error` may gain values (the repository's
`docs/compatibility.md`): ignore fields you do not know, and treat an unknown `error` by its
HTTP status. Anything else waits for `/api/v2/`, after at least 6 months' notice in the
`Deprecation` and `Sunset` headers. `info.version` is the API's version (semver); the
changelog is the repository's `CHANGELOG.md`.

**Orders** are answered `202` at once with a place in line and an estimated wait, then move
`received` → `reserved` → `paid` (or `rejected` with a `reason`, `payment_failed`,
`cancelled`, `expired`; `refunded` by staff). Poll `GET /api/v1/orders/{id}/` or give a
`callback_url`: each change is POSTed there, signed with
`X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under the client's
webhook secret (one `v1` per valid secret while it is rotated: accept any), and carries
`X-Event-Id` (one per change; a redelivery repeats it), `X-Delivery-Id` (one per attempt)
and `X-Event-Time` (when it changed, RFC 3339). An unacknowledged callback is retried with
backoff for at least 24 hours. Verify it, deduplicate on `X-Event-Id`, ignore a callback
older than what you have (`updated_at`). The POST, its headers and body are the webhook
`orderStatusChanged` below.
"""
