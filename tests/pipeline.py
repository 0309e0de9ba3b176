"""Helpers for pipeline tests: drive the real stack and read what it did."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import httpx

from orders import services
from orders.models import TERMINAL, Order
from tests.waiting import wait_until


def wait_for(
    done: Callable[[], bool], *, timeout: float = 30.0, what: str = "the pipeline"
) -> None:
    """Poll until `done()`, running the periodic sweep as beat would (it finds lost work)."""

    def done_or_sweep() -> bool:
        if done():
            return True
        services.pipeline_sweep()
        return False

    wait_until(done_or_sweep, what=what, timeout=timeout, interval=0.3)


def all_terminal(order_ids: Iterable[int]) -> Callable[[], bool]:
    ids = list(order_ids)

    def check() -> bool:
        return not Order.objects.filter(pk__in=ids).exclude(status__in=TERMINAL).exists()

    return check


def ledger(gateway: httpx.Client) -> dict[str, list[dict[str, object]]]:
    response = gateway.get("/_sandbox/ledger")
    response.raise_for_status()
    return response.json()


def succeeded_charges_by_reference(gateway: httpx.Client) -> Counter[str]:
    return Counter(
        str(c["reference"]) for c in ledger(gateway)["charges"] if c["status"] == "succeeded"
    )
