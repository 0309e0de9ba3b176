"""Middleware the chatbot API never uses, kept out of its requests.

The API (`/api/`) authenticates by API key (shop.api.authentication) and keeps no session,
no CSRF cookie, no staff user, no flash messages and no static files. For the admin, those
five middleware are the point; on an API request each still did its work on the way in and
out: a session store and a messages storage built, a lazy user attached, the CSRF cookie
read and then checked in `process_view` (DRF's views are exempt), the static-file lookup.
(AxesMiddleware stays as it is: it only reads a flag its login backend sets, and its check
wants it listed by name.)
Measured in-process, an order POST through the WSGI application cost 8-9 % less without
them and a claim POST 3-7 % less (docs/performance.md, "The web layer on the hot
endpoints").

`outside_api(Middleware)` is that middleware for every path but `/api/`: there the request
goes straight to the next layer, and its `process_view` (Django calls it for every view)
returns at once. Everything else keeps the full list in settings.MIDDLEWARE, in its order;
the security headers, the request id and log line, metrics, rate-limit headers, the
shopper's language and CommonMiddleware run for the API as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

API_PREFIX = "/api/"


def outside_api(middleware: type) -> type:
    """A subclass of `middleware` (Django's checks look for the class they need) that does
    nothing for a request whose path starts with /api/."""

    class OutsideApi(middleware):  # type: ignore[misc,valid-type]
        async_capable = False  # gunicorn's sync workers: Django builds a sync chain

        def __call__(self, request: HttpRequest) -> HttpResponse:
            if request.path_info.startswith(API_PREFIX):
                return self.get_response(request)
            return super().__call__(request)

    if hasattr(middleware, "process_view"):

        def process_view(
            self: Any, request: HttpRequest, view: Callable, args: tuple, kwargs: dict
        ) -> HttpResponse | None:
            if request.path_info.startswith(API_PREFIX):
                return None
            return middleware.process_view(self, request, view, args, kwargs)

        OutsideApi.process_view = process_view  # type: ignore[attr-defined]
    for hook in ("process_exception", "process_template_response"):
        if hasattr(middleware, hook):  # none of the five has them; refuse to drop one silently
            raise TypeError(f"outside_api does not wrap {middleware.__name__}.{hook}")
    OutsideApi.__name__ = OutsideApi.__qualname__ = f"{middleware.__name__}OutsideApi"
    OutsideApi.__doc__ = f"{middleware.__module__}.{middleware.__name__}, not for /api/."
    return OutsideApi


WhiteNoiseOutsideApi = outside_api(WhiteNoiseMiddleware)
SessionOutsideApi = outside_api(SessionMiddleware)
CsrfOutsideApi = outside_api(CsrfViewMiddleware)
AuthenticationOutsideApi = outside_api(AuthenticationMiddleware)
MessageOutsideApi = outside_api(MessageMiddleware)
