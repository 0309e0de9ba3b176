"""The sandbox gateway's refunds, protocol details, control routes and shutdown (conftest.py
runs the sandbox)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from orders.gateway.client import GatewayClient
from tests import stack
from tests.orders.gateway import sandbox

if TYPE_CHECKING:
    pass


# --- refunds -----------------------------------------------------------------------------


def test_refunds_up_to_the_charge_and_no_further(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    charge = sandbox.charge(gateway, key=sandbox.new_id("key"), amount=1000)
    assert charge.charge_id is not None
    first_key = sandbox.new_id("refund")

    # when
    first = gateway.refund(idempotency_key=first_key, charge_id=charge.charge_id, amount=400)
    replay = gateway.refund(idempotency_key=first_key, charge_id=charge.charge_id, amount=400)
    too_much = gateway.refund(
        idempotency_key=sandbox.new_id("refund"), charge_id=charge.charge_id, amount=700
    )
    rest = gateway.refund(
        idempotency_key=sandbox.new_id("refund"), charge_id=charge.charge_id, amount=600
    )

    # then
    assert first.kind == "succeeded"
    assert first.refund_id is not None
    assert first.refund_id.startswith("re_")
    assert replay == first
    assert too_much.kind == "failed"
    assert too_much.error is not None
    assert "refund_exceeds_charge" in too_much.error
    assert rest.kind == "succeeded"
    ledger = sandbox.ledger(control)
    assert [r["amount"] for r in ledger["refunds"]] == [400, 600]
    assert ledger["charges"][0]["amount_refunded"] == 1000


def test_refund_of_unknown_or_declined_charge_fails(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    declined = sandbox.charge(gateway, key=sandbox.new_id("key"), customer="decline-1")
    assert declined.charge_id is not None

    # when
    unknown_charge = gateway.refund(
        idempotency_key=sandbox.new_id("r"), charge_id="ch_nope", amount=1
    )
    of_declined = gateway.refund(
        idempotency_key=sandbox.new_id("r"), charge_id=declined.charge_id, amount=1
    )

    # then
    assert unknown_charge.kind == "failed"
    assert unknown_charge.error is not None
    assert "404 charge_not_found" in unknown_charge.error
    assert of_declined.kind == "failed"
    assert sandbox.ledger(control)["refunds"] == []


@pytest.mark.parametrize(
    ("fault", "first", "replayed"),
    [
        ({}, (1001, "failed"), False),
        ({"error_rate": 1}, (300, "unknown"), False),
        ({"error_after_charge_rate": 1}, (300, "unknown"), True),
    ],
    ids=["refused-for-too-much", "error-before-refunding", "error-after-refunding"],
)
def test_a_refund_key_is_free_again_unless_something_was_recorded(
    gateway: GatewayClient,
    control: httpx.Client,
    fault: dict[str, object],
    first: tuple[int, str],
    replayed: bool,
) -> None:
    # given: a first refund that is refused or meets a fault
    charge = sandbox.charge(gateway, key=sandbox.new_id("key"), amount=1000)
    assert charge.charge_id is not None
    key, (amount, kind) = sandbox.new_id("refund"), first
    sandbox.configure(control, **fault)
    outcome = gateway.refund(idempotency_key=key, charge_id=charge.charge_id, amount=amount)
    sandbox.configure(control, error_rate=0, error_after_charge_rate=0)

    # when: the same key asks again, for the same amount if it was recorded, else for another
    again = gateway.refund(
        idempotency_key=key, charge_id=charge.charge_id, amount=amount if replayed else 1000
    )

    # then: a recorded refund is replayed, not repeated; a key that recorded nothing is free
    assert outcome.kind == kind
    assert again.kind == "succeeded"
    [recorded] = sandbox.ledger(control)["refunds"]
    assert (recorded["id"], recorded["amount"]) == (again.refund_id, amount if replayed else 1000)


def test_a_key_used_for_a_charge_is_refused_for_a_refund(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    key = sandbox.new_id("key")
    charge = sandbox.charge(gateway, key=key, amount=1000)
    assert charge.charge_id is not None

    # when
    response = control.post(
        "/v1/refunds",
        json={"charge": charge.charge_id, "amount": 100},
        headers={"Idempotency-Key": key},
    )

    # then: a key names one request, on one endpoint
    assert response.status_code == 422
    assert response.json()["error"] == "idempotency_key_reused"
    assert sandbox.ledger(control)["refunds"] == []


# --- protocol details --------------------------------------------------------------------


def test_missing_idempotency_key_is_400(control: httpx.Client) -> None:
    # given
    body = {"amount": 100, "currency": "CNY", "reference": "order-1", "customer": "c-1"}

    # when
    response = control.post("/v1/charges", json=body)

    # then
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert "Idempotency-Key" in response.json()["fields"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("amount", "100"), ("amount", 1.5), ("amount", True), ("amount", 0), ("currency", "USD")],
)
def test_malformed_charge_body_is_400_and_charges_nothing(
    control: httpx.Client, field: str, value: object
) -> None:
    # given
    body = {"amount": 100, "currency": "CNY", "reference": "order-1", "customer": "c-1"}
    body[field] = value

    # when
    response = control.post(
        "/v1/charges", json=body, headers={"Idempotency-Key": sandbox.new_id("k")}
    )

    # then
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert set(response.json()["fields"]) == {field}
    assert sandbox.ledger(control)["charges"] == []


def test_errors_use_the_contract_envelope(sandbox_url: str, control: httpx.Client) -> None:
    # when
    unauthorised = httpx.get(f"{sandbox_url}/_sandbox/ledger")
    no_route = control.get("/v1/nothing-here")

    # then
    assert unauthorised.status_code == 401
    assert set(unauthorised.json()) == {"error", "detail"}
    assert no_route.status_code == 404
    assert no_route.json()["error"] == "not_found"


# --- control endpoints -------------------------------------------------------------------


def test_config_update_is_partial_and_validated(control: httpx.Client) -> None:
    # given
    before = control.get("/_sandbox/config").json()

    # when
    updated = control.post("/_sandbox/config", json={"decline_rate": 0.25})
    rejected = control.post(
        "/_sandbox/config", json={"error_rate": 2, "quota_burst": 1.5, "colour": "red"}
    )

    # then
    assert updated.status_code == 200
    assert updated.json() == {**before, "decline_rate": 0.25}
    assert rejected.status_code == 400
    assert set(rejected.json()["fields"]) == {"error_rate", "quota_burst", "colour"}
    assert control.get("/_sandbox/config").json() == updated.json()


def test_reset_keeps_config_unless_asked(gateway: GatewayClient, control: httpx.Client) -> None:
    # given
    startup = control.get("/_sandbox/config").json()
    sandbox.configure(control, latency_ms=5)
    sandbox.charge(gateway, key=sandbox.new_id("key"))

    # when
    kept = control.post("/_sandbox/reset").json()["config"]
    restored = control.post("/_sandbox/reset", json={"config": True}).json()["config"]

    # then
    assert kept == {**startup, "latency_ms": 5}
    assert restored == startup
    ledger = sandbox.ledger(control)
    assert ledger["charges"] == []
    assert set(ledger["stats"].values()) == {0}


def test_sigterm_stops_the_sandbox_cleanly(tmp_path: Path) -> None:
    # given
    port = stack.free_port()
    log_path = tmp_path / "sandbox.log"
    process = stack.start_sandbox(port, log_path)

    # when
    returncode = stack.stop(process)

    # then
    assert returncode == 0
    log = log_path.read_text()
    assert f"listening on http://127.0.0.1:{port}" in log
    assert "Traceback" not in log
