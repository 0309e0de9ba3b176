"""OpenAPI components shared by every app's views."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers


class ErrorOut(serializers.Serializer):
    error = serializers.CharField(help_text="A stable code, e.g. sold_out, invalid, not_found.")
    detail = serializers.CharField(help_text="A sentence for a person.")
    fields = serializers.DictField(required=False, help_text="Per-field problems (400 invalid).")
    retry_after = serializers.IntegerField(required=False, help_text="Seconds (429).")


class QueueOut(serializers.Serializer):
    position = serializers.IntegerField(
        help_text="Orders ahead of this one, itself included; 0 once taken."
    )
    estimated_wait_seconds = serializers.IntegerField(help_text="From the measured drain rate.")


ERRORS = {400: ErrorOut, 401: ErrorOut, 404: ErrorOut, 413: ErrorOut, 415: ErrorOut, 429: ErrorOut}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "config.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer"}
