"""API-key authentication for the chatbot API.

Kept apart from config.api: DRF imports authentication classes while rest_framework.views is
still loading, so this module must not import it.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from shop.models import ApiClient
from shop.selectors import api_client_for_key


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <api key>`. The request's user is the ApiClient."""

    def authenticate(self, request: Request) -> tuple[ApiClient, str] | None:
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != b"bearer" or len(header) != 2:  # noqa: PLR2004
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <api key>'.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("The API key is not valid.") from exc
        client = api_client_for_key(raw)
        if client is None:
            raise exceptions.AuthenticationFailed("The API key is not valid or was revoked.")
        return client, raw

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
