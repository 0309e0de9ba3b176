"""OpenAPI components shared by every app's views, and the helpers that describe answers."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_field,
)
from rest_framework import serializers

from infra.logs import HEADER as REQUEST_ID_HEADER


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
    """One `error` code an answer can carry: what it means, what to do, an example body.
    `shown=False`: in the status's enum and its description, but with no example, for a
    refusal made before any view runs (a chatbot meets it once, while it is being written)."""

    code: str
    meaning: str
    action: str
    detail: str
    extra: Mapping[str, object] = field(default_factory=dict)
    shown: bool = True


def error_response(status: int, *codes: Code) -> OpenApiResponse:
    """An error status: its codes, each with its meaning and the chatbot's move, the body
    with `error` as an enum of exactly these codes, and an example body per code."""
    lines = [f"- `{c.code}`: {c.meaning} **What to do:** {c.action}" for c in codes]
    return OpenApiResponse(
        error_out(status, [c.code for c in codes]),
        description="\n".join(lines),
        examples=[
            OpenApiExample(
                f"{status} {c.code}",
                value={"error": c.code, "detail": c.detail, **c.extra},
                response_only=True,
                status_codes=[str(status)],
            )
            for c in codes
            if c.shown
        ],
    )


_ERROR_OUTS: dict[tuple[int, tuple[str, ...]], type[ErrorOut]] = {}


def error_out(status: int, codes: Sequence[str]) -> type[ErrorOut]:
    """ErrorOut whose `error` is an enum of `codes`: one schema component per status and set
    of codes, named after them (`Error409LimitReachedCampaignNotActiveOut`, its enum
    `...OutErrorEnum`), so that each operation's status lists exactly the codes it can carry.
    A 429 always says `retry_after` (and the `Retry-After` header)."""
    key = (status, tuple(codes))
    if key not in _ERROR_OUTS:
        # "Out" also keeps drf-spectacular's enum hook from cutting a final "Request"
        # (bad_request) off the name, as it does for request components.
        name = f"Error{status}" + "".join(c.title().replace("_", "") for c in codes) + "Out"
        code_field = extend_schema_field({"type": "string", "enum": list(codes)})(
            type(f"{name}Code", (serializers.CharField,), {})
        )
        attrs: dict[str, Any] = {
            "__module__": __name__,
            "error": code_field(),  # no help_text: it would wrap the enum's $ref in allOf
        }
        if status == 429:  # noqa: PLR2004
            attrs["retry_after"] = serializers.IntegerField(
                min_value=1, help_text="Seconds to wait; the same as `Retry-After`."
            )
        _ERROR_OUTS[key] = type(name, (ErrorOut,), attrs)
    return _ERROR_OUTS[key]


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
    "Idempotency-Key). Without `fields`: the front door could not read the request as HTTP "
    "(a request line over its limit, bytes that are not HTTP).",
    FIX,
    "The request is not valid.",
    {"fields": {"customer_id": ["This field is required."]}},
)
# The codes below are rendered by infra/api.py (handler400, handler403, the DRF exceptions'
# table) or by the front door, infra/server.py (_error_status), for any path under /api/v1/.
BAD_REQUEST = Code(
    "bad_request",
    "Refused by Django before the API read the request: a `Host` the service does not "
    "serve (ALLOWED_HOSTS), or a request it cannot take apart.",
    FIX,
    "The request could not be understood.",
    shown=False,
)
UNAUTHORIZED = Code(
    "unauthorized",
    "No API key, a malformed `Authorization` header, or a wrong or revoked key.",
    "Give up and alert a person: check the key. Repeated failures from one address are "
    "answered 429.",
    "The API key is not valid or was revoked.",
)
FORBIDDEN = Code(
    "forbidden",
    "Refused before the API read the request, by a check outside the API's own (Django's "
    "permission checks, the front door refusing a proxy it does not trust). A valid key "
    "never gets it from these operations as shipped.",
    "Give up and alert a person, with the answer's `X-Request-ID`.",
    "Forbidden.",
)
NOT_FOUND = Code(
    "not_found",
    "No such thing for this client (another client's order is not found either), or no such path.",
    FIX,
    "Not found.",
)
NOT_ACCEPTABLE = Code(
    "not_acceptable",
    "The `Accept` header allows no `application/json`, the only media type answered. Send "
    "`Accept: application/json` or none.",
    FIX,
    "Could not satisfy the request Accept header.",
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
HEADER_TOO_LARGE = Code(
    "header_too_large",
    "A request header, or all of them together, is over the front door's limit; answered "
    "before the service read the request, and the connection closed.",
    FIX,
    "A request header, or all of them, is too large.",
)
SERVER_ERROR = Code(
    "server_error",
    "A fault on our side, logged under the answer's `X-Request-ID`. A command may or may "
    "not have been done.",
    "Retry later with the same Idempotency-Key and body, waiting longer after each attempt "
    "(the key makes it safe); report the `X-Request-ID` if it lasts.",
    "Something went wrong on our side.",
)
NOT_IMPLEMENTED = Code(
    "not_implemented",
    "A `Transfer-Encoding` the front door does not take (only `chunked` is); answered before "
    "the service read the request.",
    FIX,
    "That transfer coding is not supported.",
)


def common_errors(*, invalid: Code = INVALID) -> dict[int, OpenApiResponse]:
    """The errors any chatbot operation can answer. Not 405: a declared operation is a
    method its path takes."""
    return {
        400: error_response(400, invalid, BAD_REQUEST),
        401: error_response(401, UNAUTHORIZED),
        403: error_response(403, FORBIDDEN),
        404: error_response(404, NOT_FOUND),
        406: error_response(406, NOT_ACCEPTABLE),
        415: error_response(415, MEDIA_TYPE),
        429: error_response(429, OVERLOADED),
        431: error_response(431, HEADER_TOO_LARGE),
        500: error_response(500, SERVER_ERROR),
        501: error_response(501, NOT_IMPLEMENTED),
    }


# --- Headers ---------------------------------------------------------------------------------
# The request id is taken or made by infra.logs.RequestIdMiddleware and set on every answer
# that passes through Django; the front door's own answers (infra/server.py) come before it.

REQUEST_ID_IN = OpenApiParameter(
    REQUEST_ID_HEADER,
    {"type": "string"},
    OpenApiParameter.HEADER,
    required=False,
    description="Optional: your id for this request, kept when it is 1-64 of A-Z a-z 0-9 "
    ". _ : - (anything else is replaced by ours). Logged with everything the request did.",
)
REQUEST_ID_OUT = OpenApiParameter(
    REQUEST_ID_HEADER,
    {"type": "string"},
    OpenApiParameter.HEADER,
    response=True,
    description="The request's id, yours when usable, else ours: quote it in a report. Absent "
    "only from the front door's own refusals (429 at capacity, 431, 501, 400 not HTTP).",
)
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    {"type": "integer", "minimum": 1},
    OpenApiParameter.HEADER,
    response=[429],
    required=True,
    description="Seconds to wait before retrying; the same as the body's `retry_after`. Over "
    "a request rate: the seconds until the refusing bucket holds a token again (rounded up, "
    "at least 1). A full line: the time its excess takes to drain at the measured rate. The "
    "front door at capacity: `WEB_SHED_RETRY_AFTER_SECONDS` (1 s by default); a database or "
    "Redis failover: 1. Add a random 0 to 50 % before retrying.",
)
WWW_AUTHENTICATE = OpenApiParameter(
    "WWW-Authenticate",
    {"type": "string"},
    OpenApiParameter.HEADER,
    response=[401],
    required=True,
    description="The scheme to authenticate with: `Bearer`.",
)
# Written by infra.ratelimit.RateLimitHeadersMiddleware on the answers to the POSTs that take
# rate-limit tokens (docs/integrator-guide.md, Rate limits and 429). Optional: absent while
# the client's and the shopper's requests are unlimited, and when a request was refused
# before its tokens were counted (the front door's own 429, a full line).
RATE_LIMIT_POLICY_OUT = OpenApiParameter(
    "RateLimit-Policy",
    {"type": "string"},
    OpenApiParameter.HEADER,
    response=True,
    required=False,
    description="The request-rate buckets this request drew from "
    '(draft-ietf-httpapi-ratelimit-headers-10): `"client"` (your key\'s requests) and, '
    'when the body names a shopper, `"customer"`, each with `q` (its burst: requests '
    "you may send at once) and `w` (the seconds an empty bucket takes to fill, at least 1: "
    "`q/w` a second is a pace you can keep). Example: "
    '`"client";q=1000;w=1, "customer";q=10;w=5`.',
)
RATE_LIMIT_OUT = OpenApiParameter(
    "RateLimit",
    {"type": "string"},
    OpenApiParameter.HEADER,
    response=True,
    required=False,
    description="Where you stand against each bucket of `RateLimit-Policy` after this "
    "request: `r`, the requests you may still send at once, and `t`, the seconds until the "
    "bucket is full again. On a 429, the bucket that refused, `r=0`. Example: "
    '`"client";r=999;t=1, "customer";r=0;t=1`.',
)
IDEMPOTENCY_KEY = {"type": "string", "minLength": 1, "maxLength": 255}  # infra.api


def common_parameters() -> list[OpenApiParameter]:
    """What every chatbot operation takes and answers in headers, besides its own."""
    return [REQUEST_ID_IN, REQUEST_ID_OUT, RETRY_AFTER, WWW_AUTHENTICATE]


def rate_limited_parameters() -> list[OpenApiParameter]:
    """common_parameters(), and the rate-limit headers of the POSTs that take tokens (claims,
    orders, cancels: shop.api.throttling.ChatbotAdmission and intake's admission)."""
    return [*common_parameters(), RATE_LIMIT_POLICY_OUT, RATE_LIMIT_OUT]


class StrictSerializerScheme(OpenApiSerializerExtension):
    """drf-spectacular leaves out a nested list's `min_length`/`max_length` (OrderPlaceIn's
    1-20 items): they are added as `minItems`/`maxItems`, so every limit the serializer
    enforces is in the schema."""

    target_class = "infra.api.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_basic_serializer(self.target, direction)
        for name, child in self.target.fields.items():
            if not isinstance(child, serializers.ListSerializer):
                continue
            prop = schema["properties"][name]
            if child.min_length is not None:
                prop["minItems"] = child.min_length
            if child.max_length is not None:
                prop["maxItems"] = child.max_length
        return schema
