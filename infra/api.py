"""API glue shared by every app: API-key authentication, the error envelope, strict input.

Every answer under /api/ is JSON in the contract's envelope (docs/integrator-guide.md, Conventions):
`{"error": "<code>", "detail": "<sentence>", ...}`; never HTML, never a trace.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, TypeVar

import redis
from django import db
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from infra import metrics
from infra.contract import CUSTOMER_ID_HELP, CUSTOMER_ID_RE, key_livemode
from infra.errors import DomainError
from infra.messages import detail_translate
from infra.parsers import too_large

log = logging.getLogger(__name__)


def client_id(request: Request) -> int:
    return request.user.pk  # type: ignore[union-attr]


def livemode(request: Request) -> bool:
    """The request's mode, from its (authenticated) key: False for a test key
    (docs/integrator-guide.md, Test mode). No lookup: the prefix says it."""
    return key_livemode(str(request.auth or ""))


# --- Errors --------------------------------------------------------------------------------

_DRF_CODES = {
    exceptions.NotAuthenticated: "unauthorized",
    exceptions.AuthenticationFailed: "unauthorized",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "overloaded",
}


def error_body(code: str, detail: str, **extra: object) -> dict[str, object]:
    """The contract's envelope; `detail` in the language the request asked for (chosen from
    Accept-Language by infra.logs.ShopperLanguageMiddleware), the code as it is."""
    return {"error": code, "detail": detail_translate(detail), **extra}


# Refusals a shopper is told about (sold out, limits, budget, a full line), counted by code;
# a 429 also by its cause. Not 404s or 400s: those are the chatbot's mistakes, seen by status
# in http_requests_total.
_REFUSAL_STATUSES = frozenset({409, 410, 422, 429})
_CAUSES = {"overloaded": "line_full"}  # the only DomainError answered 429 (LineFull)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every error in the contract's envelope."""
    if isinstance(exc, DomainError):
        if exc.status in _REFUSAL_STATUSES:
            metrics.refusal(exc.code, _CAUSES.get(exc.code, ""))
        response = Response(error_body(exc.code, exc.detail, **exc.extra), status=exc.status)
        if "retry_after" in exc.extra:
            response["Retry-After"] = str(exc.extra["retry_after"])
        return response
    if isinstance(exc, RequestDataTooBig):
        exc = exceptions.ValidationError({"body": [too_large()]})
    if isinstance(exc, exceptions.ParseError):
        # Anything malformed is 400 `invalid` with `fields` (docs/integrator-guide.md,
        # Errors and what to do).
        exc = exceptions.ValidationError({"body": [f"Malformed JSON: {exc.detail}"]})
    if isinstance(exc, exceptions.ValidationError):
        return Response(
            error_body("invalid", "The request is not valid.", fields=_fields(exc.detail)),
            status=400,
        )
    if isinstance(exc, UNAVAILABLE):
        return _unavailable(exc, context)
    response = drf_exception_handler(exc, context)
    if response is None:
        log.exception("unhandled error in %s", context.get("view").__class__.__name__)
        return Response(error_body("server_error", "Something went wrong on our side."), status=500)
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    detail = str(exc.detail) if isinstance(exc, exceptions.APIException) else str(exc)
    extra: dict[str, object] = {}
    if isinstance(exc, exceptions.Throttled):
        metrics.refusal("overloaded", "rate_limit")
        extra["retry_after"] = max(1, math.ceil(exc.wait or 1))
        response["Retry-After"] = str(extra["retry_after"])
        detail = "Too many requests; retry later."
    response.data = error_body(code, detail, **extra)
    return response


# PostgreSQL or Redis unreachable for a moment (a restart, a failover, a terminated
# connection) or a row lock not granted in time: nothing the client did. Overload is a 429
# with Retry-After, never a 5xx (docs/integrator-guide.md, Rate limits and 429). A retry
# with the same Idempotency-Key is always safe.
UNAVAILABLE = (db.OperationalError, db.InterfaceError, redis.ConnectionError, redis.TimeoutError)
UNAVAILABLE_RETRY_AFTER = 1


def _unavailable(exc: Exception, context: dict[str, Any]) -> Response:
    metrics.refusal("overloaded", "unavailable")
    view = context.get("view").__class__.__name__
    log.warning("answering 429 from %s: %s: %s", view, type(exc).__name__, exc)
    response = Response(
        error_body(
            "overloaded",
            "The service cannot take this request right now; retry shortly.",
            retry_after=UNAVAILABLE_RETRY_AFTER,
        ),
        status=429,
    )
    response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return response


def _fields(detail: object) -> object:
    """DRF's nested error structure, with ErrorDetail reduced to plain strings."""
    if isinstance(detail, dict):
        return {k: _fields(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_fields(v) for v in detail]
    return str(detail)


def json_error(request: HttpRequest, status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse(error_body(code, detail), status=status)


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(request, 404, "not_found", "No such endpoint.")


@csrf_exempt  # a POST to an unknown path is a 404, not Django's HTML CSRF page
def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """The last route under /api/: any path that matched nothing above it. Django answers an
    unresolved URL with its HTML debug page when DEBUG is on (handler404 is used only with
    DEBUG off), and the chatbot's developers integrate against `make run`, where it is on."""
    return handler404(request)


def handler500(request: HttpRequest) -> JsonResponse:
    return json_error(request, 500, "server_error", "Something went wrong on our side.")


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(request, 400, "bad_request", "The request could not be understood.")


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(request, 403, "forbidden", "Forbidden.")


# --- Strict input ------------------------------------------------------------------------


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, nothing else: "2", 2.0 and true are type errors, not coerced
    (docs/integrator-guide.md, Conventions)."""

    default_error_messages = {"type": "Must be a JSON integer."}

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("type")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string, nothing else (DRF would turn 42 into "42")."""

    default_error_messages = {"type": "Must be a JSON string."}

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("type")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Input serializer that refuses unknown fields (no mass assignment, no silent typos)."""

    def to_internal_value(self, data: object) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class FullMatchValidator(RegexValidator):
    """The whole value matches. RegexValidator searches, and `$` also matches before a final
    newline, so "c-42\n" would pass. Still a RegexValidator, so the schema shows the pattern."""

    def __call__(self, value: object) -> None:
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise DjangoValidationError(self.message, code=self.code, params={"value": value})


def customer_id_field(**kwargs: Any) -> StrictCharField:
    # No trimming: " c-42" is not a customer id (docs/integrator-guide.md, Conventions), not
    # something to tidy up.
    return StrictCharField(
        max_length=64,
        trim_whitespace=False,
        validators=[FullMatchValidator(CUSTOMER_ID_RE, CUSTOMER_ID_HELP)],
        help_text=CUSTOMER_ID_HELP,
        **kwargs,
    )


class StrictCursorPagination(CursorPagination):
    """DRF trusts the position inside a cursor, and the client can forge it: "p=x" against
    an integer ordering, or a NUL byte, reaches the database and answers 500. A position that
    does not fit `position_re` is refused like any other bad cursor: 400 `invalid`, since a
    cursor is input (DRF itself would answer 404)."""

    position_re = re.compile(r"[^\x00]{1,255}")

    def decode_cursor(self, request: Request) -> Cursor | None:
        invalid = exceptions.ValidationError(
            {self.cursor_query_param: [self.invalid_cursor_message]}
        )
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound as exc:
            raise invalid from exc
        position = cursor.position if cursor is not None else None
        if position is not None and self.position_re.fullmatch(position) is None:
            raise invalid
        return cursor


S = TypeVar("S", bound=serializers.Serializer)


def parse(serializer_class: type[S], data: object) -> dict[str, Any]:
    """Validate input or raise ValidationError (rendered 400 `invalid` with `fields`)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data  # type: ignore[return-value]


def require_idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key", "")
    # A NUL cannot be stored (PostgreSQL text): refused here rather than a 500 at the lookup.
    if not 1 <= len(key) <= 255 or "\x00" in key:  # noqa: PLR2004
        raise exceptions.ValidationError(
            {"Idempotency-Key": ["This header is required: 1-255 characters, no NUL."]}
        )
    return key
