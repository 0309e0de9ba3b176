"""Middleware the chatbot API never uses, kept out of its requests.

The API (`/api/`) authenticates by API key (shop.api.authentication) and keeps no session,
no staff user, no flash messages and no static files. For the admin, those four middleware
are the point; on an API request each still did its work on the way in and out: a session
store and a messages storage built and then checked, a lazy user attached, the static-file
lookup. Measured in-process, alternated with the full list: 24 µs of CPU less per API
request, about 1 % of an order POST (docs/performance.md, "The web layer on the hot
endpoints").

`outside_api(Middleware)` is a subclass of that middleware which, for a path under `/api/`,
hands the request straight to the next layer. Every other path, the admin's included, runs
it as before, and Django's checks, which look for the admin's middleware classes, still find
them. The rest of settings.MIDDLEWARE runs for the API as before: the security headers, the
request id and log line, metrics, rate-limit headers, the shopper's language, CommonMiddleware,
CSRF (DRF's views are exempt, and the deploy check wants it listed by name) and Axes (its
check too).
"""

from __future__ import annotations

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware

from infra.paths import API_PREFIX


def outside_api(middleware: type) -> type:
    """A subclass of `middleware` that does nothing for a path under /api/."""
    for hook in ("process_view", "process_exception", "process_template_response"):
        if hasattr(middleware, hook):  # Django calls these apart from __call__: not skipped
            raise TypeError(f"outside_api cannot skip {middleware.__name__}.{hook}")

    class OutsideApi(middleware):  # type: ignore[misc,valid-type]
        async_capable = False  # gunicorn's sync workers: Django builds a sync chain

        def __call__(self, request: HttpRequest) -> HttpResponse:
            if request.path_info.startswith(API_PREFIX):
                return self.get_response(request)
            return super().__call__(request)

    OutsideApi.__name__ = OutsideApi.__qualname__ = f"{middleware.__name__}OutsideApi"
    OutsideApi.__doc__ = f"{middleware.__module__}.{middleware.__name__}, not for /api/."
    return OutsideApi


WhiteNoiseOutsideApi = outside_api(WhiteNoiseMiddleware)
SessionOutsideApi = outside_api(SessionMiddleware)
AuthenticationOutsideApi = outside_api(AuthenticationMiddleware)
MessageOutsideApi = outside_api(MessageMiddleware)
