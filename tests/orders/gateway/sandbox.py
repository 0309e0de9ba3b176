"""Driving the sandbox gateway in these tests: its settings, its ledger, a charge."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tests import stack

if TYPE_CHECKING:
    import httpx

    from orders.gateway.client import ChargeOutcome, GatewayClient

SANDBOX_KEY = stack.SANDBOX_KEY
AUTH = stack.SANDBOX_AUTH


def configure(control: httpx.Client, **changes: object) -> None:
    response = control.post("/_sandbox/config", json=changes)
    assert response.status_code == 200, response.text


def ledger(control: httpx.Client) -> dict[str, Any]:
    response = control.get("/_sandbox/ledger")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stats(control: httpx.Client) -> dict[str, int]:
    counters: dict[str, int] = ledger(control)["stats"]
    return counters


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def charge(
    gateway: GatewayClient,
    *,
    key: str,
    reference: str = "order-1",
    amount: int = 1100,
    customer: str = "c-42",
) -> ChargeOutcome:
    return gateway.charge(
        idempotency_key=key, amount=amount, currency="CNY", reference=reference, customer=customer
    )
