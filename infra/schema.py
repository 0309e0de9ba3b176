"""OpenAPI components shared by every app's views, and the helpers that describe answers."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from drf_spectacular.utils import OpenApiExample, OpenApiResponse
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


# --- What each answer means and what the chatbot should do -----------------------------------
# Every operation's @extend_schema takes its summary, description, examples and responses from
# `<app>/api/docs.py`, built with these helpers, so the Swagger page (/api/docs/) is a guide
# an integrator can work from. tests/infra/test_api_schema_docs.py fails if one lacks them.

RETRY = "Retry later with the same Idempotency-Key and body (after `Retry-After` seconds)."
TELL = "Tell the shopper; the same request gets the same answer."
FIX = "Give up: the request itself is wrong; fix the chatbot, a retry gets the same answer."


@dataclass(frozen=True)
class Code:
    """One `error` code an answer can carry: what it means, what to do, an example body."""

    code: str
    meaning: str
    action: str
    detail: str
    extra: Mapping[str, object] = field(default_factory=dict)


def error_response(status: int, *codes: Code) -> OpenApiResponse:
    """An error status: its codes, each with its meaning and the chatbot's move, and an
    example body per code."""
    lines = [f"- `{c.code}`: {c.meaning} **What to do:** {c.action}" for c in codes]
    return OpenApiResponse(
        ErrorOut,
        description="\n".join(lines),
        examples=[
            OpenApiExample(
                f"{status} {c.code}",
                value={"error": c.code, "detail": c.detail, **c.extra},
                response_only=True,
                status_codes=[str(status)],
            )
            for c in codes
        ],
    )


def ok_response(
    serializer: object, description: str, example: object, status: int = 200
) -> OpenApiResponse:
    return OpenApiResponse(
        serializer,
        description=description,
        examples=[
            OpenApiExample(
                f"{status}", value=example, response_only=True, status_codes=[str(status)]
            )
        ],
    )


INVALID = Code(
    "invalid",
    "Malformed input; `fields` names each problem (wrong type, unknown field, bad value, a "
    "body over 16 KiB (refused before it is read, the connection then closed), a missing "
    "Idempotency-Key).",
    FIX,
    "The request is not valid.",
    {"fields": {"customer_id": ["This field is required."]}},
)
UNAUTHORIZED = Code(
    "unauthorized",
    "No API key, a malformed `Authorization` header, or a wrong or revoked key.",
    "Give up and alert a person: check the key. Repeated failures from one address are "
    "answered 429.",
    "The API key is not valid or was revoked.",
)
NOT_FOUND = Code(
    "not_found",
    "No such thing for this client (another client's order is not found either), or no such path.",
    FIX,
    "Not found.",
)
OVERLOADED = Code(
    "overloaded",
    "The client or the shopper is over its request rate, the campaign's line is at its "
    "ceiling, the service cannot take the request at this moment, or this address failed "
    "authentication too often. Nothing was done.",
    RETRY,
    "Too many requests; retry later.",
    {"retry_after": 2},
)
MEDIA_TYPE = Code(
    "unsupported_media_type",
    "The body is not `application/json`.",
    FIX,
    'Unsupported media type "text/plain" in request.',
)


def common_errors(*, invalid: Code = INVALID) -> dict[int, OpenApiResponse]:
    """The errors any chatbot operation can answer."""
    return {
        400: error_response(400, invalid),
        401: error_response(401, UNAUTHORIZED),
        404: error_response(404, NOT_FOUND),
        415: error_response(415, MEDIA_TYPE),
        429: error_response(429, OVERLOADED),
    }
