"""How a test waits: for a condition, with a deadline, never for a fixed time.

A test that sleeps a fixed time and then looks is slow when the machine is quick and flaky
when it is busy. `wait_until` polls the condition instead and fails with what it waited for.
Where elapsed time itself is what a test proves (a bucket refilling, a hold's time passing),
the condition is that clock, stated as such.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    done: Callable[[], T], *, what: str, timeout: float = 30.0, interval: float = 0.05
) -> T:
    """Call `done()` every `interval` seconds until it returns something true, and return
    that; AssertionError naming `what` once `timeout` seconds passed without."""
    deadline = time.monotonic() + timeout
    while True:
        result = done()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
