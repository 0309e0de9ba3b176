"""Unmatched paths under /api/ answer the JSON 404 envelope from a real gunicorn, under the
settings `make run` uses (local: DEBUG on, where Django would answer its HTML debug page with
the URL patterns in it) and under production's (DEBUG off)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests import stack

PATHS = [
    "/api/",
    "/api/v1/orders/0/",
    "/api/v1/orders/-1/",
    "/api/v1/orders/..%2F..%2Fetc%2Fpasswd/",
    "/api/v1/campaigns/%00/",
    "/api/v1/unknown-endpoint/",
    "/api/v1/orders",
]

SETTINGS = {
    "local-debug-on": {"DJANGO_SETTINGS_MODULE": "config.settings.local", "DEBUG": "true"},
    "production-debug-off": {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "edge-test-only-not-secret",
        "ALLOWED_HOSTS": "127.0.0.1",
        "PAYMENT_GATEWAY_KEY": "unused",
        "SECURE_SSL_REDIRECT": "false",
        "METRICS_ALLOWED_NETWORKS": "127.0.0.1/32",
    },
}


@pytest.fixture(scope="module", params=sorted(SETTINGS))
def web(request: pytest.FixtureRequest, worker_env: dict[str, str], log_dir: Path) -> Iterator[str]:
    env = {
        **worker_env,
        **SETTINGS[request.param],
        "REDIS_URL": settings.REDIS_URL,  # the tests' own Redis database
        "PAYMENT_GATEWAY_URL": "http://127.0.0.1:9",
    }
    base, process = stack.start_web(log_dir / f"gunicorn-edge-{request.param}.log", env=env)
    yield base
    stack.stop(process)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_unmatched_api_path_is_a_json_404_from_gunicorn(
    web: str, path: str, method: str
) -> None:
    # given / when
    response = httpx.request(method, f"{web}{path}", headers={"Authorization": "Bearer x"})
    # then
    assert response.status_code == 404, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": "not_found", "detail": "No such endpoint."}
