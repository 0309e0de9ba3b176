"""The operators' endpoints and the request id, in process: who may read /metrics, probes that
work whatever the Host header, and the X-Request-ID a chatbot sends or gets."""

from __future__ import annotations

import logging
import re

import pytest
from django.test import Client, override_settings
from prometheus_client import REGISTRY

from infra import metrics
from tests.factories.coupons import CampaignFactory


@pytest.fixture(autouse=True)
def _forget_networks() -> None:
    metrics._allowed.cache_clear()


def test_healthz_answers_without_touching_anything() -> None:
    # given: no database access allowed in this test (no django_db mark)
    # when
    response = Client().get("/healthz")
    # then
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


@override_settings(ALLOWED_HOSTS=["shop.example"], SECURE_SSL_REDIRECT=True)
def test_probes_answer_a_host_the_api_would_refuse() -> None:
    # given: a probe addresses the process by its IP, over plain HTTP
    client = Client(HTTP_HOST="10.1.2.3:8000")
    # when / then
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/api/v1/campaigns/").status_code == 400  # DisallowedHost, as before


def test_metrics_serve_the_text_format() -> None:
    # when
    response = Client().get("/metrics")
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"# TYPE http_requests_total counter" in response.content


@override_settings(METRICS_ENABLED=False)
def test_metrics_can_be_closed() -> None:
    assert Client().get("/metrics").status_code == 404


@override_settings(METRICS_ALLOWED_NETWORKS=["10.0.0.0/8"])
def test_metrics_answer_only_the_allowed_networks() -> None:
    assert Client(REMOTE_ADDR="192.168.1.9").get("/metrics").status_code == 404
    assert Client(REMOTE_ADDR="10.20.30.40").get("/metrics").status_code == 200


@pytest.mark.django_db
def test_request_id_is_taken_from_the_caller_or_made(caplog: pytest.LogCaptureFixture) -> None:
    # given
    campaign = CampaignFactory()
    client = Client()
    # when
    with caplog.at_level(logging.INFO, logger="requests"):
        given = client.get(f"/api/v1/campaigns/{campaign.slug}/", HTTP_X_REQUEST_ID="chat-1:a")
        made = client.get(f"/api/v1/campaigns/{campaign.slug}/")
        forged = client.get("/api/v1/campaigns/", HTTP_X_REQUEST_ID="x\r\nSet-Cookie: a=b")
    # then
    assert given["X-Request-ID"] == "chat-1:a"
    assert re.fullmatch(r"[0-9a-f]{24}", made["X-Request-ID"])
    assert re.fullmatch(r"[0-9a-f]{24}", forged["X-Request-ID"])  # replaced, not echoed
    line = next(r for r in caplog.records if getattr(r, "request_id", "") == "chat-1:a")
    assert line.status == 401  # type: ignore[attr-defined]  # no API key: still logged


def test_request_metrics_use_the_route_name_not_the_path() -> None:
    # given
    labels = {"endpoint": "v1:order-detail", "method": "GET", "status": "401"}
    before = REGISTRY.get_sample_value("http_requests_total", labels) or 0.0
    # when
    Client().get("/api/v1/orders/6f1c4d3e-0000-4000-8000-000000000001/")
    Client().get("/api/v1/orders/6f1c4d3e-0000-4000-8000-000000000002/")
    # then
    assert REGISTRY.get_sample_value("http_requests_total", labels) == before + 2
