"""Admission control for the chatbot API: per-client and per-customer limits on POSTs
(claims, orders, cancels), atomic in Redis (infra.ratelimit), answered 429 with Retry-After;
every answer to such a POST says where the client stands (RateLimit-Policy and RateLimit).

These protect capacity and stop one shopper's retry storm from crowding out the rest; they
are not business limits (the per-customer coupon limit is enforced in the database).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.throttling import BaseThrottle

from infra import ratelimit
from infra.contract import CUSTOMER_ID_RE
from shop.models import RateLimit
from shop.selectors import rate_limit

if TYPE_CHECKING:  # DRF's views import this module while they load
    from rest_framework.request import Request
    from rest_framework.views import APIView


class ChatbotAdmission(BaseThrottle):
    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        if request.method != "POST" or request.user is None:
            return True
        if getattr(view, "admits_itself", False):
            return True  # its service takes the same tokens in its own Redis round trip
        client_id = request.user.pk
        limit = rate_limit(RateLimit.Scope.CLIENT_REQUESTS)
        grant = ratelimit.take(f"client:{client_id}", limit)
        ratelimit.standing_note("client", limit, grant.tokens)  # the answer's RateLimit
        if grant.granted:
            customer = _customer_id(request)
            if customer is None:
                return True
            limit = rate_limit(RateLimit.Scope.CUSTOMER_REQUESTS)
            grant = ratelimit.take(f"customer:{client_id}:{customer}", limit)
            ratelimit.standing_note("customer", limit, grant.tokens)
            if grant.granted:
                return True
        # The refusing bucket's own refill time: seconds until it holds one token.
        self._wait = max(grant.retry_after, 1.0)
        return False

    def wait(self) -> float | None:
        return self._wait


def _customer_id(request: Request) -> str | None:
    """The shopper a POST is for, when the body names a well-formed one (a malformed one is
    refused by the serializer; it must not mint Redis keys)."""
    data = request.data
    customer = data.get("customer_id") if isinstance(data, dict) else None
    if isinstance(customer, str) and CUSTOMER_ID_RE.fullmatch(customer):
        return customer
    return None
