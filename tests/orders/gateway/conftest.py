"""The sandbox payment gateway, run as a real process for the tests of this folder, driven
through the real client. No database: these tests talk HTTP only. One sandbox process serves
the folder; each test starts from an empty ledger and the start-up config."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from orders.gateway.client import GatewayClient
from tests import stack
from tests.orders.gateway.sandbox import AUTH, SANDBOX_KEY

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="package")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = stack.free_port()
    process = stack.start_sandbox(port, tmp_path_factory.mktemp("sandbox") / "sandbox.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stack.stop(process)


@pytest.fixture(scope="package")
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
