"""Structured logs: every line carries what is known of its context (request id, client,
campaign, order, status), as one JSON object per line in production (LOG_FORMAT=json) or a
readable line under `make run`.

The request id comes from the caller's `X-Request-ID` (when it is a sane token) or is made
here, is returned in the response's `X-Request-ID`, is stored on the order the request
creates (Order.request_id, the field's default), and travels from there: the workers log the
ids of the orders each batch moves with their request ids, and each callback POST carries
its order's request id in `X-Request-ID`. A Celery message published while a request is
handled carries that request's id in its headers; the task's log lines show it as
`nudged_by` (one message wakes a worker for many orders, so it is not *the* request).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.cache import patch_vary_headers

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# Other context a line may carry: client, campaign, order, status, task, nudged_by.
context: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar(
    "log_context", default=None
)

HEADER = "X-Request-ID"
# A caller's id is kept only if it is a plain token: it ends up in logs, headers and a column.
_SANE = re.compile(r"[A-Za-z0-9._:\-]{1,64}")

log = logging.getLogger("requests")


def current_request_id() -> str:
    """The id of the request being handled here, "" outside one (Order.request_id's default)."""
    return request_id.get()


def new_request_id() -> str:
    return secrets.token_hex(12)


def context_set(**values: object) -> None:
    current = context.get()
    context.set({**(current or {}), **values})


class ContextFilter(logging.Filter):
    """Copies the request id and context into every record (the formatters print them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        if rid and not hasattr(record, "request_id"):
            record.request_id = rid
        extra = context.get()
        if extra:
            for key, value in extra.items():
                if not hasattr(record, key):
                    setattr(record, key, value)
        return True


# Attributes every LogRecord has; anything else on a record is context or `extra=`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, context fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """The readable line, with the context appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


class RequestIdMiddleware:
    """Takes or makes the request id, returns it in the response, and logs one line per
    answer (LOG_REQUESTS) with what the request concerned: client, route, status, order."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.log_requests = settings.LOG_REQUESTS

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        rid = given if given and _SANE.fullmatch(given) else new_request_id()
        token = request_id.set(rid)
        ctx_token = context.set(None)
        start = time.perf_counter()
        try:
            response = self.get_response(request)
            response[HEADER] = rid
            if self.log_requests and log.isEnabledFor(logging.INFO):
                _log_request(request, response, time.perf_counter() - start)
            return response
        finally:
            request_id.reset(token)
            context.reset(ctx_token)


def _log_request(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    user = getattr(request, "user", None)  # DRF sets the API client here once authenticated
    fields: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "duration_ms": round(seconds * 1000, 2),
    }
    if user is not None and getattr(user, "pk", None) is not None:
        fields["client"] = getattr(user, "name", None) or user.pk
    data = getattr(response, "data", None)  # a DRF answer: the order or coupon it concerns
    if isinstance(data, dict):
        if "error" in data:
            fields["error"] = data["error"]
        elif "id" in data and "status" in data:
            fields["order"], fields["order_status"] = data["id"], data["status"]
        if "campaign" in data:
            fields["campaign"] = data["campaign"]
    # A record made here, not through log.info: that would walk the stack to find the caller,
    # a third of the line's cost, to name this function every time.
    record = logging.LogRecord(
        log.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %s",
        (request.method, request.path, response.status_code),
        None,
        "_log_request",
    )
    record.__dict__.update(fields)
    log.handle(record)


class ShopperLanguageMiddleware:
    """The language of error details, from Accept-Language: Simplified Chinese when the
    caller prefers it, else English. Django's LocaleMiddleware does the same for any request
    and costs ~35 us each (URL-prefix checks, Vary on every answer); this one costs nothing
    for a request that does not mention Chinese, and marks only error answers (the only ones
    whose body depends on the language) with Vary and Content-Language."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        accept = request.META.get("HTTP_ACCEPT_LANGUAGE", "")
        if "zh" not in accept.lower():
            return self._answer(request, None)
        language = translation.get_language_from_request(request)
        translation.activate(language)
        try:
            return self._answer(request, language)
        finally:
            translation.deactivate()

    def _answer(self, request: HttpRequest, language: str | None) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code >= 400:  # noqa: PLR2004
            patch_vary_headers(response, ("Accept-Language",))
            response.headers.setdefault("Content-Language", language or settings.LANGUAGE_CODE)
        return response
