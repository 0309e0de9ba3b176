"""Errors: every answer that is not a success becomes an `ApiError` carrying the service's
envelope (`{"error": "<code>", "detail": "<sentence>", ...}`), as one subclass per kind of
reaction the integrator's guide asks for ("Errors and what to do"). Branch on `error`, the
stable code; `detail` is a sentence for a person and may change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CampaignClientError(Exception):
    """Anything this package raises."""


class ApiError(CampaignClientError):
    """The service answered with an error.

    `status` is the HTTP status, `error` the stable code (`sold_out`, `invalid`, ...),
    `detail` the sentence, `fields` the per-field problems of a 400, `retry_after` the
    seconds a 429 asks to wait, `request_id` the answer's X-Request-ID (quote it to the
    operators), `body` the whole envelope.
    """

    def __init__(
        self,
        *,
        status: int,
        error: str,
        detail: str,
        fields: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.fields = dict(fields or {})
        self.retry_after = retry_after
        self.request_id = request_id
        self.body = dict(body or {})


class InvalidRequest(ApiError):
    """400 `invalid`: the request is wrong (`fields` names each problem). Fix the bot."""


class Unauthorized(ApiError):
    """401: no key, a wrong or a revoked one. Alert a person; do not retry in a loop."""


class NotFound(ApiError):
    """404: no such order, campaign or path for this client."""


class Conflict(ApiError):
    """409: final for this request (`campaign_not_active`, `limit_reached`, `out_of_stock`,
    `budget_exhausted`, `not_cancellable`): tell the shopper."""


class SoldOut(ApiError):
    """410 `sold_out`: no coupons or no stock left. Tell the shopper."""


class IdempotencyKeyReused(ApiError):
    """422: the key was used with a different body. A new request needs a new key."""


class Overloaded(ApiError):
    """429 `overloaded`, still there after the retries allowed: nothing was done; retry later
    with the same idempotency key."""


class ServerError(ApiError):
    """5xx, still there after the retries allowed: retry later with the same key."""


class TransportFailed(CampaignClientError):
    """The network failed (no connection, a time-out, a dropped answer) on every attempt
    allowed. The request may or may not have reached the service: retry it with the same
    idempotency key. The last network error is the `__cause__`."""


class WaitTimedOut(CampaignClientError):
    """`wait_for_order` gave up before the order was final; `order` is the last one read."""

    def __init__(self, order: object) -> None:
        super().__init__("the order is not final yet")
        self.order = order


class WebhookVerificationError(CampaignClientError):
    """A callback failed verification: refuse it (answer 400 or 401, never 2xx)."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    410: SoldOut,
    422: IdempotencyKeyReused,
    429: Overloaded,
}


def error_class(status: int) -> type[ApiError]:
    if status >= 500:  # noqa: PLR2004
        return ServerError
    return _BY_STATUS.get(status, ApiError)
