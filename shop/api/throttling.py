"""Admission control for the chatbot API: per-client and per-customer limits on POSTs
(claims, orders, cancels), atomic in Redis (infra.ratelimit), answered 429 with Retry-After;
every answer to such a POST says where the client stands (RateLimit-Policy and RateLimit).

These protect capacity and stop one shopper's retry storm from crowding out the rest; they
are not business limits (the per-customer coupon limit is enforced in the database).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.exceptions import APIException
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
        # The client's bucket, then the customer's: one Redis round trip for both
        # (ratelimit.take_each), the customer's only tried when the client's had a token.
        takes = [("client", f"client:{client_id}", rate_limit(RateLimit.Scope.CLIENT_REQUESTS))]
        try:
            customer = _customer_id(request)
            unreadable = None
        except APIException as error:  # an unreadable body: refused once the client's token
            # is taken, as when the body was read only after it
            customer, unreadable = None, error
        if customer is not None:
            limit = rate_limit(RateLimit.Scope.CUSTOMER_REQUESTS)
            takes.append(("customer", f"customer:{client_id}:{customer}", limit))
        grants = ratelimit.take_each([(bucket, limit) for _, bucket, limit in takes])
        for (policy, _, limit), grant in zip(takes, grants, strict=False):
            ratelimit.standing_note(policy, limit, grant.tokens)  # the answer's RateLimit
        grant = grants[-1]
        if grant.granted:
            if unreadable is not None:
                raise unreadable
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
