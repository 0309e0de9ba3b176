"""verify_webhook against vectors made by the service's own signing code
(webhook_vectors.json; the service's tests/clients/ regenerate and compare them)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from campaign_client import WebhookVerificationError, signature_matches, verify_webhook

VECTORS = json.loads((Path(__file__).parent / "webhook_vectors.json").read_text("utf-8"))


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_each_vector(vector: dict) -> None:
    # given
    body = vector["body"].encode()
    headers = {"X-Signature": vector["header"]}
    # when / then
    assert (
        signature_matches(
            body,
            vector["header"],
            vector["secrets"],
            tolerance=vector["tolerance"],
            now=vector["now"],
        )
        is vector["valid"]
    )
    if vector["valid"]:
        event = verify_webhook(
            body, headers, vector["secrets"], tolerance=vector["tolerance"], now=vector["now"]
        )
        assert event.order.status == "paid"
    else:
        with pytest.raises(WebhookVerificationError):
            verify_webhook(
                body, headers, vector["secrets"], tolerance=vector["tolerance"], now=vector["now"]
            )


def test_the_event_carries_its_headers_read_in_any_case() -> None:
    # given: a framework that keeps the sender's header case, or lower-cases them
    (vector,) = [v for v in VECTORS if v["name"] == "one secret"]
    headers = {
        "x-signature": vector["header"],
        "x-event-id": "evt_8812345",
        "X-DELIVERY-ID": "3f0c9a6e2b7d4e58a1c0d9b6e7f21a34",
        "X-Event-Time": "2026-12-06T13:12:04.123456Z",
        "X-Request-ID": "req-1",
    }
    # when
    event = verify_webhook(
        vector["body"].encode(), headers, vector["secrets"][0], now=vector["now"]
    )
    # then
    assert (event.event_id, event.delivery_id, event.request_id) == (
        "evt_8812345",
        "3f0c9a6e2b7d4e58a1c0d9b6e7f21a34",
        "req-1",
    )
    assert event.event_time == datetime(2026, 12, 6, 13, 12, 4, 123456, tzinfo=timezone.utc)
    assert event.order.id == "0b6c7c6e-5d0c-4f55-9a37-9d1f4a0d8a11"
    assert event.order.updated_at == datetime(2026, 11, 29, 17, 0, 1, 250000, tzinfo=timezone.utc)


def test_no_signature_header_is_refused() -> None:
    with pytest.raises(WebhookVerificationError, match="no X-Signature"):
        verify_webhook(b"{}", {"X-Event-Id": "evt_1"}, "secret")


def test_the_default_clock_refuses_an_old_capture() -> None:
    (vector,) = [v for v in VECTORS if v["name"] == "one secret"]
    with pytest.raises(WebhookVerificationError):
        verify_webhook(
            vector["body"].encode(), {"X-Signature": vector["header"]}, vector["secrets"]
        )


def test_no_secret_is_a_mistake_not_a_refusal() -> None:
    with pytest.raises(ValueError, match="no webhook secret"):
        signature_matches(b"{}", "t=1,v1=ab", [])
