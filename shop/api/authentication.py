"""API-key authentication for the chatbot API.

Kept apart from infra.api: DRF imports authentication classes while rest_framework.views is
still loading, so this module must not import it.

Failed authentication is limited per source address (AUTH_FAILURE_BURST at once, then
AUTH_FAILURE_RPS a second, counted in Redis for every process): past it, `429 overloaded`
with Retry-After, answered before any database lookup. A key found in this process's cache
is never limited, so a sprayer sharing an address with a good client does not lock it out.
"""

from __future__ import annotations

import math
from typing import NoReturn

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from shop import services as shop_services
from shop.models import ApiClient
from shop.selectors import api_client_for_key, api_client_known, auth_blocked_seconds


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <api key>`. The request's user is the ApiClient."""

    def authenticate(self, request: Request) -> tuple[ApiClient, str] | None:
        header = get_authorization_header(request).split()
        if not header:
            return None
        address = source_address(request)
        if header[0].lower() != b"bearer" or len(header) != 2:  # noqa: PLR2004
            _failed(address, "Use 'Authorization: Bearer <api key>'.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            _failed(address, "The API key is not valid.")
        client = api_client_known(raw)
        if client is None:  # not a key this process knows to be good
            blocked = auth_blocked_seconds(address)
            if blocked > 0:
                raise _too_many(blocked)
            client = api_client_for_key(raw)  # the negative cache, else the database
        if client is None:
            _failed(address, "The API key is not valid or was revoked.")
        return client, raw

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def source_address(request: Request) -> str:
    """The client's address: REMOTE_ADDR, or behind a trusted proxy the last address it
    appended to CLIENT_ADDRESS_HEADER (e.g. HTTP_X_FORWARDED_FOR); earlier entries are the
    client's own words and could be forged."""
    header = settings.CLIENT_ADDRESS_HEADER
    if header:
        forwarded = request.META.get(header, "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return str(request.META.get("REMOTE_ADDR", ""))[:64] or "unknown"


def _failed(address: str, detail: str) -> NoReturn:
    wait = shop_services.auth_failure_record(address=address)
    if wait > 0:
        raise _too_many(wait)
    raise exceptions.AuthenticationFailed(detail)


def _too_many(wait: float) -> exceptions.Throttled:
    return exceptions.Throttled(
        wait=max(1, math.ceil(wait)), detail="Too many failed authentications from this address."
    )
