"""`manage.py gateway_check URL` (orders/gateway/contract_check.py): every check passes against
the sandbox, the reference implementation (conftest.py runs it), and against a gateway written
from docs/gateway-protocol.md alone; each flaw given to that one fails the check it breaks."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orders.gateway.contract_check import CHECKS, check_name
from tests.orders.gateway import sandbox
from tests.orders.gateway.paper_gateway import PaperGateway
from tests.orders.gateway.sandbox import SANDBOX_KEY

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from http.server import ThreadingHTTPServer

    import httpx

PAPER_KEY = "paper-key"


def gateway_check(url: str, key: str) -> list[str]:
    """Run the command; its output lines. Raises CommandError when a check failed."""
    out = io.StringIO()
    try:
        call_command("gateway_check", url, "--key", key, "--timeout", "5", stdout=out)
    finally:
        print(out.getvalue())  # noqa: T201  (shown by pytest when the test fails)
    return out.getvalue().splitlines()


@pytest.fixture
def serve() -> Iterator[Callable[[PaperGateway], str]]:
    """Serve a paper gateway for the test; its URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(gateway: PaperGateway) -> str:
        servers.append(server := gateway.serve())
        host, port = server.server_address[:2]
        return f"http://{host!s}:{port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_sandbox_passes_every_check_and_is_left_refunded(
    sandbox_url: str, control: httpx.Client
) -> None:
    # when
    lines = gateway_check(sandbox_url, SANDBOX_KEY)

    # then
    assert lines == [f"PASS {check_name(c)}" for c in CHECKS] + [f"all {len(CHECKS)} checks passed"]
    charges = sandbox.ledger(control)["charges"]
    assert len(charges) == 3
    assert all(c["amount_refunded"] == c["amount"] for c in charges)


def test_a_run_against_a_shared_gateway_passes_again(sandbox_url: str) -> None:
    # given: an earlier run's charges and keys are still in the gateway
    gateway_check(sandbox_url, SANDBOX_KEY)

    # when
    lines = gateway_check(sandbox_url, SANDBOX_KEY)

    # then
    assert lines[-1] == f"all {len(CHECKS)} checks passed"


def test_a_gateway_built_from_the_protocol_page_alone_passes(
    serve: Callable[[PaperGateway], str],
) -> None:
    # given
    gateway = PaperGateway(key=PAPER_KEY)
    url = serve(gateway)

    # when
    lines = gateway_check(url, PAPER_KEY)

    # then
    assert lines[-1] == f"all {len(CHECKS)} checks passed"
    assert len(gateway.charges) == 3


@pytest.mark.parametrize(
    ("flaw", "check"),
    [
        ("replay_charges_again", "charge_replayed"),
        ("any_key_accepted", "bad_key_refused"),
        ("over_refund_allowed", "refund_exceeding_charge_refused"),
    ],
)
def test_a_flawed_gateway_fails_the_check_it_breaks(
    serve: Callable[[PaperGateway], str], flaw: str, check: str
) -> None:
    # given
    url = serve(PaperGateway(key=PAPER_KEY, flaws=frozenset({flaw})))
    out = io.StringIO()

    # when
    with pytest.raises(CommandError, match=rf"checks failed: .*\b{check}\b") as failure:
        call_command("gateway_check", url, "--key", PAPER_KEY, stdout=out)

    # then
    failed = [line for line in out.getvalue().splitlines() if line.startswith("FAIL ")]
    assert any(line.startswith(f"FAIL {check}: ") for line in failed), out.getvalue()
    assert str(failure.value).startswith(f"{len(failed)} of {len(CHECKS)} checks failed")


def test_a_refused_key_stops_the_run_at_once(sandbox_url: str) -> None:
    # given
    out = io.StringIO()

    # when
    with pytest.raises(CommandError, match="key_accepted"):
        call_command("gateway_check", sandbox_url, "--key", "not-the-key", stdout=out)

    # then
    [line] = out.getvalue().splitlines()
    assert line.startswith("FAIL key_accepted: the gateway refuses this key")
