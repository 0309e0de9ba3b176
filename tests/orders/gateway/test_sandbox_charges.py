"""The sandbox gateway's charges: success, replay, declines, quota, and the unknown outcomes
of its faults (conftest.py runs the sandbox)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import httpx

from orders.gateway.client import MAX_ANSWER_BYTES, ChargeOutcome, GatewayClient
from tests import stack
from tests.orders.gateway import sandbox
from tests.orders.gateway.sandbox import SANDBOX_KEY
from tests.waiting import wait_until

if TYPE_CHECKING:
    pass


# --- charges -----------------------------------------------------------------------------


def test_charge_succeeds_and_is_recorded(gateway: GatewayClient, control: httpx.Client) -> None:
    # given
    key = sandbox.new_id("key")

    # when
    outcome = sandbox.charge(gateway, key=key, reference="order-7", amount=1100)

    # then
    assert outcome.kind == "succeeded"
    assert outcome.charge_id is not None
    assert outcome.charge_id.startswith("ch_")
    [charge] = sandbox.ledger(control)["charges"]
    assert charge["id"] == outcome.charge_id
    assert charge["status"] == "succeeded"
    assert (charge["amount"], charge["currency"], charge["reference"]) == (1100, "CNY", "order-7")
    assert sandbox.stats(control)["charges_succeeded"] == 1


def test_replayed_key_returns_the_first_charge_and_charges_once(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    key = sandbox.new_id("key")
    first = sandbox.charge(gateway, key=key)

    # when
    again = sandbox.charge(gateway, key=key)

    # then
    assert again == first
    assert again.kind == "succeeded"
    assert len(sandbox.ledger(control)["charges"]) == 1


def test_replay_answers_with_the_same_status_and_body(control: httpx.Client) -> None:
    # given
    headers = {"Idempotency-Key": sandbox.new_id("key")}
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
    key = sandbox.new_id("key")
    sandbox.charge(gateway, key=key, amount=1100)

    # when
    outcome = sandbox.charge(gateway, key=key, amount=1200)

    # then
    assert outcome.kind == "unknown"
    assert outcome.error is not None
    assert "422 idempotency_key_reused" in outcome.error
    assert len(sandbox.ledger(control)["charges"]) == 1


def test_concurrent_requests_with_one_key_charge_once(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given: latency keeps the first request in flight while the others arrive
    sandbox.configure(control, latency_ms=800)
    key, attempts = sandbox.new_id("key"), 6
    barrier = threading.Barrier(attempts)

    def attempt() -> ChargeOutcome:
        barrier.wait()
        return sandbox.charge(gateway, key=key)

    # when
    with ThreadPoolExecutor(max_workers=attempts) as pool:
        outcomes = [future.result() for future in [pool.submit(attempt) for _ in range(attempts)]]

    # then
    assert sorted(o.kind for o in outcomes) == ["retry"] * (attempts - 1) + ["succeeded"]
    assert all("409" in (o.error or "") for o in outcomes if o.kind == "retry")
    assert len(sandbox.ledger(control)["charges"]) == 1
    assert sandbox.stats(control)["http_409"] == attempts - 1


def test_customer_starting_with_decline_is_declined(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    key = sandbox.new_id("key")

    # when
    outcome = sandbox.charge(gateway, key=key, customer="decline-me")

    # then
    assert outcome.kind == "declined"
    assert outcome.charge_id is not None
    [charge] = sandbox.ledger(control)["charges"]
    assert charge["status"] == "declined"
    assert sandbox.stats(control)["charges_declined"] == 1


def test_decline_rate_one_declines_everyone(gateway: GatewayClient, control: httpx.Client) -> None:
    # given
    sandbox.configure(control, decline_rate=1)

    # when
    outcome = sandbox.charge(gateway, key=sandbox.new_id("key"), customer="c-1")

    # then
    assert outcome.kind == "declined"


def test_over_quota_is_retry_with_retry_after_and_charges_nothing(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given: one request every two seconds, and the only token already spent
    sandbox.configure(control, quota_rps=0.5, quota_burst=1)
    assert sandbox.charge(gateway, key=sandbox.new_id("key")).kind == "succeeded"

    # when
    outcome = sandbox.charge(gateway, key=sandbox.new_id("key"), reference="order-2")

    # then
    assert outcome.kind == "retry"
    assert outcome.retry_after is not None
    assert outcome.retry_after >= 1
    assert len(sandbox.ledger(control)["charges"]) == 1
    assert sandbox.stats(control)["http_429"] == 1


def test_a_lookup_over_quota_is_retry_not_unknown(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given: the only token already spent
    sandbox.configure(control, quota_rps=0.5, quota_burst=1)
    assert (
        sandbox.charge(gateway, key=sandbox.new_id("key"), reference="order-1").kind == "succeeded"
    )

    # when
    lookup = gateway.charges_for(reference="order-1")

    # then: refused before doing anything, so the payment's attempts must not count it
    assert isinstance(lookup, ChargeOutcome)
    assert lookup.kind == "retry"
    assert lookup.retry_after is not None
    assert lookup.retry_after >= 1


def test_quota_answer_carries_retry_after_header_and_field(control: httpx.Client) -> None:
    # given
    sandbox.configure(control, quota_rps=0.5, quota_burst=1)
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
    sandbox.configure(control, drop_rate=1)
    key, reference = sandbox.new_id("key"), sandbox.new_id("order")

    # when
    outcome = sandbox.charge(gateway, key=key, reference=reference)

    # then
    assert outcome.kind == "unknown"
    assert outcome.charge_id is None
    [recorded] = sandbox.ledger(control)["charges"]
    assert sandbox.stats(control)["dropped"] == 1
    found = gateway.charges_for(reference=reference)
    assert isinstance(found, list)
    assert [(c["id"], c["status"]) for c in found] == [(recorded["id"], "succeeded")]


def test_retry_after_a_dropped_answer_replays_the_recorded_charge(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    sandbox.configure(control, drop_rate=1)
    key = sandbox.new_id("key")
    assert sandbox.charge(gateway, key=key).kind == "unknown"
    sandbox.configure(control, drop_rate=0)

    # when
    outcome = sandbox.charge(gateway, key=key)

    # then
    [recorded] = sandbox.ledger(control)["charges"]
    assert outcome.kind == "succeeded"
    assert outcome.charge_id == recorded["id"]


def test_error_after_charge_is_unknown_with_one_charge(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    sandbox.configure(control, error_after_charge_rate=1)

    # when
    outcome = sandbox.charge(gateway, key=sandbox.new_id("key"))

    # then
    assert outcome.kind == "unknown"
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 500")
    assert len(sandbox.ledger(control)["charges"]) == 1


def test_error_before_charge_is_unknown_and_charges_nothing(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    sandbox.configure(control, error_rate=1)
    key, reference = sandbox.new_id("key"), sandbox.new_id("order")

    # when
    outcome = sandbox.charge(gateway, key=key, reference=reference)

    # then
    assert outcome.kind == "unknown"
    assert outcome.error is not None
    assert outcome.error[:8] in {"HTTP 500", "HTTP 502", "HTTP 503"}
    assert sandbox.ledger(control)["charges"] == []
    lookup = gateway.charges_for(reference=reference)  # the lookup fails too
    assert isinstance(lookup, ChargeOutcome)
    assert lookup.kind == "unknown"
    assert lookup.error is not None
    assert lookup.error.startswith("could not look up earlier charges: HTTP 50")


def test_key_is_free_again_after_an_error_before_charge(
    gateway: GatewayClient, control: httpx.Client
) -> None:
    # given
    sandbox.configure(control, error_rate=1)
    key = sandbox.new_id("key")
    assert sandbox.charge(gateway, key=key).kind == "unknown"
    sandbox.configure(control, error_rate=0)

    # when
    outcome = sandbox.charge(gateway, key=key)

    # then
    assert outcome.kind == "succeeded"
    assert len(sandbox.ledger(control)["charges"]) == 1


def test_client_time_out_is_unknown_while_the_gateway_still_charges(
    sandbox_url: str, control: httpx.Client
) -> None:
    # given
    sandbox.configure(control, latency_ms=600)
    reference = sandbox.new_id("order")
    impatient = GatewayClient(base_url=sandbox_url, api_key=SANDBOX_KEY, timeout=0.2)

    # when
    with impatient:
        outcome = sandbox.charge(impatient, key=sandbox.new_id("key"), reference=reference)

    # then
    assert outcome.kind == "unknown"
    assert outcome.error is not None
    assert "Timeout" in outcome.error
    wait_until(
        lambda: sandbox.ledger(control)["charges"], timeout=3, what="the charge in the ledger"
    )
    [charge] = sandbox.ledger(control)["charges"]
    assert charge["reference"] == reference


def test_gateway_down_is_unknown_and_cannot_be_asked() -> None:
    # given: a port nothing listens on
    down = GatewayClient(base_url=f"http://127.0.0.1:{stack.free_port()}", api_key=SANDBOX_KEY)

    # when
    with down:
        charge = sandbox.charge(down, key=sandbox.new_id("key"))
        found = down.charges_for(reference="order-1")
        refund = down.refund(idempotency_key=sandbox.new_id("key"), charge_id="ch_x", amount=1)

    # then
    assert charge.kind == "unknown"
    assert charge.error is not None
    assert "Connection refused" in charge.error  # says why, for the record
    assert isinstance(found, ChargeOutcome)
    assert found.kind == "unknown"
    assert refund.kind == "unknown"


class _Flood(BaseHTTPRequestHandler):
    """A gateway that answers a charge with 201 and 4 MiB of body."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", str(4 << 20))
        self.end_headers()
        try:
            self.wfile.write(b" " * (4 << 20))
        except OSError:  # the client stopped reading, as it should
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def test_an_answer_longer_than_any_charge_is_unknown_not_read_whole() -> None:
    # given: a gateway whose 201 carries 4 MiB, over MAX_ANSWER_BYTES
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flood)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    flooded = GatewayClient(base_url=f"http://127.0.0.1:{server.server_address[1]}", api_key="k")
    # when
    try:
        with flooded:
            charge = sandbox.charge(flooded, key=sandbox.new_id("key"))
    finally:
        server.shutdown()
        server.server_close()
    # then: no usable answer, so unknown (settled by lookup), and it says why
    assert charge.kind == "unknown"
    assert charge.error is not None
    assert f"AnswerTooLarge: answer body over {MAX_ANSWER_BYTES} bytes" in charge.error


def test_wrong_key_is_never_succeeded(sandbox_url: str, control: httpx.Client) -> None:
    # given
    intruder = GatewayClient(base_url=sandbox_url, api_key="not-the-key")

    # when
    with intruder:
        outcome = sandbox.charge(intruder, key=sandbox.new_id("key"))
        found = intruder.charges_for(reference="order-1")

    # then
    assert outcome.kind == "unknown"
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 401 unauthorized")
    assert isinstance(found, ChargeOutcome)
    assert found.kind == "unknown"
    assert sandbox.ledger(control)["charges"] == []
