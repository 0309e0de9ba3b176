"""The sandbox payment gateway, run as a real process, driven through the real client.

No database: these tests talk HTTP only. One sandbox process serves the module; each
test starts from an empty ledger and the start-up config.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from orders.gateway.client import ChargeOutcome, GatewayClient
from tests import stack

if TYPE_CHECKING:
    from collections.abc import Iterator

SANDBOX_KEY = stack.SANDBOX_KEY
AUTH = stack.SANDBOX_AUTH


# --- helpers -----------------------------------------------------------------------------


def _configure(control: httpx.Client, **changes: object) -> None:
    response = control.post("/_sandbox/config", json=changes)
    assert response.status_code == 200, response.text


def _ledger(control: httpx.Client) -> dict[str, Any]:
    response = control.get("/_sandbox/ledger")
    assert response.status_code == 200, response.text
    ledger: dict[str, Any] = response.json()
    return ledger


def _stats(control: httpx.Client) -> dict[str, int]:
    stats: dict[str, int] = _ledger(control)["stats"]
    return stats


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _charge(
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


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = stack.free_port()
    process = stack.start_sandbox(port, tmp_path_factory.mktemp("sandbox") / "sandbox.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.stop(process)


@pytest.fixture(scope="module")
def control(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url, headers=AUTH, timeout=5.0) as client:
        yield client


@pytest.fixture(autouse=True)
def _fresh_sandbox(control: httpx.Client) -> None:
    response = control.post("/_sandbox/reset", json={"config": True})
    assert response.status_code == 200, response.text


@pytest.fixture
def gateway(sandbox_url: str) -> Iterator[GatewayClient]:
    with GatewayClient(base_url=sandbox_url, api_key=SANDBOX_KEY, timeout=5.0) as client:
        yield client


# --- charges -----------------------------------------------------------------------------


def test_charge_succeeds_and_is_recorded(gateway: GatewayClient, control: httpx.Client) -> None:
    # given
    key = _new_id("key")

    # when
    outcome = _charge(gateway, key=key, reference="order-7", amount=1100)

    # then
    assert outcome.kind == "succeeded"
    assert outcome.charge_id is not None
    assert outcome.charge_id.startswith("ch_")
    [charge] = _ledger(control)["charges"]
    assert charge["id"] == outcome.charge_id
    assert charge["status"] == "succeeded"
    assert (charge["amount"], charge["currency"], charge["reference"]) == (1100, "CNY", "order-7")
    assert _stats(control)["charges_succeeded"] == 1


def test_replayed_key_returns_the_first_charge_and_charges_once(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    key = _new_id("key")
    first = _charge(gateway, key=key)

    # when
    again = _charge(gateway, key=key)

    # then
    assert again == first
    assert again.kind == "succeeded"
    assert len(_ledger(control)["charges"]) == 1


def test_replay_answers_with_the_same_status_and_body(control: httpx.Client) -> None:
    # given
    headers = {"Idempotency-Key": _new_id("key")}
    body = {"amount": 500, "currency": "CNY", "reference": "order-9", "customer": "c-1"}
    first = control.post("/v1/charges", json=body, headers=headers)

    # when
    again = control.post("/v1/charges", json=body, headers=headers)

    # then
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert set(first.json()) == {
        "id",
        "status",
        "amount",
        "currency",
        "reference",
        "customer",
        "created_at",
    }


def test_key_reused_with_another_body_is_unknown_not_charged(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    key = _new_id("key")
    _charge(gateway, key=key, amount=1100)

    # when
    outcome = _charge(gateway, key=key, amount=1200)

    # then
    assert outcome.kind == "unknown"
    assert outcome.error is not None
    assert "422 idempotency_key_reused" in outcome.error
    assert len(_ledger(control)["charges"]) == 1


def test_concurrent_requests_with_one_key_charge_once(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given: latency keeps the first request in flight while the others arrive
    _configure(control, latency_ms=800)
    key, attempts = _new_id("key"), 6
    barrier = threading.Barrier(attempts)

    def attempt() -> ChargeOutcome:
        barrier.wait()
        return _charge(gateway, key=key)

    # when
    with ThreadPoolExecutor(max_workers=attempts) as pool:
        outcomes = [future.result() for future in [pool.submit(attempt) for _ in range(attempts)]]

    # then
    assert sorted(o.kind for o in outcomes) == ["retry"] * (attempts - 1) + ["succeeded"]
    assert all("409" in (o.error or "") for o in outcomes if o.kind == "retry")
    assert len(_ledger(control)["charges"]) == 1
    assert _stats(control)["http_409"] == attempts - 1


def test_customer_starting_with_decline_is_declined(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    key = _new_id("key")

    # when
    outcome = _charge(gateway, key=key, customer="decline-me")

    # then
    assert outcome.kind == "declined"
    assert outcome.charge_id is not None
    [charge] = _ledger(control)["charges"]
    assert charge["status"] == "declined"
    assert _stats(control)["charges_declined"] == 1


def test_decline_rate_one_declines_everyone(gateway: GatewayClient, control: httpx.Client) -> None:
    # given
    _configure(control, decline_rate=1)

    # when
    outcome = _charge(gateway, key=_new_id("key"), customer="c-1")

    # then
    assert outcome.kind == "declined"


def test_over_quota_is_retry_with_retry_after_and_charges_nothing(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given: one request every two seconds, and the only token already spent
    _configure(control, quota_rps=0.5, quota_burst=1)
    assert _charge(gateway, key=_new_id("key")).kind == "succeeded"

    # when
    outcome = _charge(gateway, key=_new_id("key"), reference="order-2")

    # then
    assert outcome.kind == "retry"
    assert outcome.retry_after is not None
    assert outcome.retry_after >= 1
    assert len(_ledger(control)["charges"]) == 1
    assert _stats(control)["http_429"] == 1


def test_a_lookup_over_quota_is_retry_not_unknown(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given: the only token already spent
    _configure(control, quota_rps=0.5, quota_burst=1)
    assert _charge(gateway, key=_new_id("key"), reference="order-1").kind == "succeeded"

    # when
    lookup = gateway.charges_for(reference="order-1")

    # then: refused before doing anything, so the payment's attempts must not count it
    assert isinstance(lookup, ChargeOutcome)
    assert lookup.kind == "retry"
    assert lookup.retry_after is not None
    assert lookup.retry_after >= 1


def test_quota_answer_carries_retry_after_header_and_field(control: httpx.Client) -> None:
    # given
    _configure(control, quota_rps=0.5, quota_burst=1)
    control.get("/v1/charges", params={"reference": "order-1"})

    # when
    response = control.get("/v1/charges", params={"reference": "order-1"})

    # then
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"] == "quota_exceeded"
    assert response.json()["retry_after"] == int(response.headers["Retry-After"])


# --- unknown outcomes --------------------------------------------------------------------


def test_dropped_answer_is_unknown_and_settled_by_looking_up_the_reference(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    _configure(control, drop_rate=1)
    key, reference = _new_id("key"), _new_id("order")

    # when
    outcome = _charge(gateway, key=key, reference=reference)

    # then
    assert outcome.kind == "unknown"
    assert outcome.charge_id is None
    [recorded] = _ledger(control)["charges"]
    assert _stats(control)["dropped"] == 1
    found = gateway.charges_for(reference=reference)
    assert isinstance(found, list)
    assert [(c["id"], c["status"]) for c in found] == [(recorded["id"], "succeeded")]


def test_retry_after_a_dropped_answer_replays_the_recorded_charge(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    _configure(control, drop_rate=1)
    key = _new_id("key")
    assert _charge(gateway, key=key).kind == "unknown"
    _configure(control, drop_rate=0)

    # when
    outcome = _charge(gateway, key=key)

    # then
    [recorded] = _ledger(control)["charges"]
    assert outcome.kind == "succeeded"
    assert outcome.charge_id == recorded["id"]


def test_error_after_charge_is_unknown_with_one_charge(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    _configure(control, error_after_charge_rate=1)

    # when
    outcome = _charge(gateway, key=_new_id("key"))

    # then
    assert outcome.kind == "unknown"
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 500")
    assert len(_ledger(control)["charges"]) == 1


def test_error_before_charge_is_unknown_and_charges_nothing(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    _configure(control, error_rate=1)
    key, reference = _new_id("key"), _new_id("order")

    # when
    outcome = _charge(gateway, key=key, reference=reference)

    # then
    assert outcome.kind == "unknown"
    assert outcome.error is not None
    assert outcome.error[:8] in {"HTTP 500", "HTTP 502", "HTTP 503"}
    assert _ledger(control)["charges"] == []
    lookup = gateway.charges_for(reference=reference)  # the lookup fails too
    assert isinstance(lookup, ChargeOutcome)
    assert lookup.kind == "unknown"
    assert lookup.error is not None
    assert lookup.error.startswith("could not look up earlier charges: HTTP 50")


def test_key_is_free_again_after_an_error_before_charge(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    _configure(control, error_rate=1)
    key = _new_id("key")
    assert _charge(gateway, key=key).kind == "unknown"
    _configure(control, error_rate=0)

    # when
    outcome = _charge(gateway, key=key)

    # then
    assert outcome.kind == "succeeded"
    assert len(_ledger(control)["charges"]) == 1


def test_client_time_out_is_unknown_while_the_gateway_still_charges(
    sandbox_url: str, control: httpx.Client
) -> None:
    # given
    _configure(control, latency_ms=600)
    reference = _new_id("order")
    impatient = GatewayClient(base_url=sandbox_url, api_key=SANDBOX_KEY, timeout=0.2)

    # when
    with impatient:
        outcome = _charge(impatient, key=_new_id("key"), reference=reference)

    # then
    assert outcome.kind == "unknown"
    assert outcome.error is not None
    assert "Timeout" in outcome.error
    deadline = time.monotonic() + 3
    while not _ledger(control)["charges"] and time.monotonic() < deadline:
        time.sleep(0.05)
    [charge] = _ledger(control)["charges"]
    assert charge["reference"] == reference


def test_gateway_down_is_unknown_and_cannot_be_asked() -> None:
    # given: a port nothing listens on
    down = GatewayClient(base_url=f"http://127.0.0.1:{stack.free_port()}", api_key=SANDBOX_KEY)

    # when
    with down:
        charge = _charge(down, key=_new_id("key"))
        found = down.charges_for(reference="order-1")
        refund = down.refund(idempotency_key=_new_id("key"), charge_id="ch_x", amount=1)

    # then
    assert charge.kind == "unknown"
    assert charge.error is not None
    assert "Connection refused" in charge.error  # says why, for the record
    assert isinstance(found, ChargeOutcome)
    assert found.kind == "unknown"
    assert refund.kind == "unknown"


def test_wrong_key_is_never_succeeded(sandbox_url: str, control: httpx.Client) -> None:
    # given
    intruder = GatewayClient(base_url=sandbox_url, api_key="not-the-key")

    # when
    with intruder:
        outcome = _charge(intruder, key=_new_id("key"))
        found = intruder.charges_for(reference="order-1")

    # then
    assert outcome.kind == "unknown"
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 401 unauthorized")
    assert isinstance(found, ChargeOutcome)
    assert found.kind == "unknown"
    assert _ledger(control)["charges"] == []


# --- refunds -----------------------------------------------------------------------------


def test_refunds_up_to_the_charge_and_no_further(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    charge = _charge(gateway, key=_new_id("key"), amount=1000)
    assert charge.charge_id is not None
    first_key = _new_id("refund")

    # when
    first = gateway.refund(idempotency_key=first_key, charge_id=charge.charge_id, amount=400)
    replay = gateway.refund(idempotency_key=first_key, charge_id=charge.charge_id, amount=400)
    too_much = gateway.refund(
        idempotency_key=_new_id("refund"), charge_id=charge.charge_id, amount=700
    )
    rest = gateway.refund(idempotency_key=_new_id("refund"), charge_id=charge.charge_id, amount=600)

    # then
    assert first.kind == "succeeded"
    assert first.refund_id is not None
    assert first.refund_id.startswith("re_")
    assert replay == first
    assert too_much.kind == "failed"
    assert too_much.error is not None
    assert "refund_exceeds_charge" in too_much.error
    assert rest.kind == "succeeded"
    ledger = _ledger(control)
    assert [r["amount"] for r in ledger["refunds"]] == [400, 600]
    assert ledger["charges"][0]["amount_refunded"] == 1000


def test_refund_of_unknown_or_declined_charge_fails(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    declined = _charge(gateway, key=_new_id("key"), customer="decline-1")
    assert declined.charge_id is not None

    # when
    unknown_charge = gateway.refund(idempotency_key=_new_id("r"), charge_id="ch_nope", amount=1)
    of_declined = gateway.refund(
        idempotency_key=_new_id("r"), charge_id=declined.charge_id, amount=1
    )

    # then
    assert unknown_charge.kind == "failed"
    assert unknown_charge.error is not None
    assert "404 charge_not_found" in unknown_charge.error
    assert of_declined.kind == "failed"
    assert _ledger(control)["refunds"] == []


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
    response = control.post("/v1/charges", json=body, headers={"Idempotency-Key": _new_id("k")})

    # then
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert set(response.json()["fields"]) == {field}
    assert _ledger(control)["charges"] == []


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
    _configure(control, latency_ms=5)
    _charge(gateway, key=_new_id("key"))

    # when
    kept = control.post("/_sandbox/reset").json()["config"]
    restored = control.post("/_sandbox/reset", json={"config": True}).json()["config"]

    # then
    assert kept == {**startup, "latency_ms": 5}
    assert restored == startup
    ledger = _ledger(control)
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
