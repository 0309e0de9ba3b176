"""The admin's middleware kept out of the chatbot API (infra/middleware.py): an /api/ request
is not touched by sessions, the staff user, messages or static files; every other path is,
as before; Django's own checks still find the admin's middleware; the admin keeps its CSRF
check and session; the API's answers keep their security headers and set no cookie."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import checks
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from infra.middleware import (
    AuthenticationOutsideApi,
    MessageOutsideApi,
    SessionOutsideApi,
    outside_api,
)
from tests.factories.coupons import CampaignFactory

# Each class and what its middleware leaves on a request it handles.
LEAVES = [
    (SessionOutsideApi, "session"),
    (AuthenticationOutsideApi, "user"),
    (MessageOutsideApi, "_messages"),
]


def _chain(*classes: type) -> tuple[Any, list[HttpRequest]]:
    """The classes in settings' order in front of a view that records what reached it."""
    reached: list[HttpRequest] = []

    def view(request: HttpRequest) -> HttpResponse:
        reached.append(request)
        return HttpResponse("ok")

    handler: Any = view
    for cls in reversed(classes):
        handler = cls(handler)
    return handler, reached


def _has(request: HttpRequest, mark: str) -> bool:
    return mark in request.__dict__


@pytest.mark.parametrize(("cls", "mark"), LEAVES, ids=[c.__name__ for c, _ in LEAVES])
def test_an_api_request_passes_untouched_and_any_other_is_handled(cls: type, mark: str) -> None:
    # given: the session middleware in front, as in settings (messages and the user need it)
    handler, reached = _chain(SessionOutsideApi, cls)
    factory = RequestFactory()
    # when
    api = handler(factory.post("/api/v1/orders/", data={}, content_type="application/json"))
    admin = handler(factory.get("/admin/"))
    # then
    assert api.status_code == admin.status_code == 200
    assert not _has(reached[0], mark), f"{cls.__name__} touched an /api/ request"
    assert _has(reached[1], mark), f"{cls.__name__} did not handle /admin/"


def test_a_middleware_with_hooks_django_calls_apart_is_refused() -> None:
    # given: CSRF's check is a process_view, which Django calls whatever __call__ did
    # when / then
    with pytest.raises(TypeError, match="process_view"):
        outside_api(CsrfViewMiddleware)


def test_static_files_are_still_served() -> None:
    # when
    response = Client().get("/static/admin/css/base.css")
    # then: WhiteNoiseOutsideApi answered it (there is no URL pattern for /static/)
    assert response.status_code == 200


def test_djangos_checks_still_find_the_admins_middleware() -> None:
    # when: the admin's checks look for subclasses of the session, auth and messages classes
    found = [m for m in checks.run_checks(tags=[checks.Tags.admin]) if m.is_serious()]
    # then
    assert found == []


@pytest.mark.django_db
def test_the_admin_login_keeps_its_csrf_check_and_its_session() -> None:
    # given
    get_user_model().objects.create_superuser("boss", "boss@example.com", "a-long-password-1")
    strict = Client(enforce_csrf_checks=True)
    # when: a login POST without the CSRF token, then the form's own round trip
    refused = strict.post("/admin/login/", {"username": "boss", "password": "a-long-password-1"})
    form = strict.get("/admin/login/")
    token = form.cookies["csrftoken"].value
    form_data = {"username": "boss", "password": "a-long-password-1"}
    logged_in = strict.post("/admin/login/", {**form_data, "csrfmiddlewaretoken": token})
    # then
    assert refused.status_code == 403
    assert logged_in.status_code == 302
    assert "sessionid" in logged_in.cookies
    assert strict.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_an_api_answer_keeps_its_security_headers_and_sets_no_cookie(api: APIClient) -> None:
    # given
    campaign = CampaignFactory()
    # when
    response = api.get(f"/api/v1/campaigns/{campaign.slug}/")
    # then
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Cookie" not in response.get("Vary", "")
    assert not response.cookies
