"""What the load generator sends and records: a scheduled request (Job), its outcome
(Result), the pool of pre-claimed coupons, an accepted order, and the quantiles of a list."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]
# A keep-alive connection told to retry later waits at most this long: the product's backlog
# ceiling may ask for minutes, and a soak that stopped offering would measure nothing.
RETRY_AFTER_CAP_S = 2.0

SKUS_DEFAULT = ("BENCH-A", "BENCH-B", "BENCH-C", "BENCH-D")
TERMINAL = frozenset({"paid", "rejected", "payment_failed", "cancelled", "expired", "refunded"})


LONG_WAIT_S = 5.0  # the waits whose estimates are judged (issue 14)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def quantiles(values: list[float]) -> JsonDict:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else None,
    }


@dataclass
class Job:
    """One request to make: what, when it was due, and which step of which phase it is."""

    phase: str
    step: int
    due: float  # epoch seconds
    kind: str  # claims | orders | floor_get | floor_insert
    replay: bool = False


@dataclass
class Result:
    phase: str
    step: int
    kind: str
    due: float
    sent: float  # 0 when never sent
    done: float
    status: int  # HTTP status; 0 when no answer
    error: str  # "" or the error code / client-side failure
    replay: bool
    accepted: bool  # a new coupon (201) or a new order (202)
    retry_after: float = 0.0  # seconds a 429's Retry-After asked for; 0 otherwise


@dataclass
class Pool:
    """Customers holding a coupon and not yet used for an order: claimed over HTTP first,
    then seeded ranges (customer and code derived from the number, see bench/seed.py)."""

    claimed: deque[tuple[str, str]] = field(default_factory=deque)
    ranges: deque[tuple[int, int, int]] = field(default_factory=deque)  # start, end, decline

    def size(self) -> int:
        return len(self.claimed) + sum(end - start for start, end, _ in self.ranges)

    def take(self) -> tuple[str, str] | None:
        if self.claimed:
            return self.claimed.popleft()
        while self.ranges:
            start, end, decline_every = self.ranges[0]
            if start < end:
                self.ranges[0] = (start + 1, end, decline_every)
                return seeded_customer(start, decline_every), seeded_code(start)
            self.ranges.popleft()
        return None


def seeded_customer(n: int, decline_every: int) -> str:
    return f"decline-s-{n}" if decline_every and n % decline_every == 0 else f"s-{n}"


def seeded_code(n: int) -> str:
    return f"SEED{n:010d}"


@dataclass
class Accepted:
    """An order the API accepted (202), as the chatbot saw it."""

    phase: str
    at: float  # epoch seconds the 202 arrived
    estimated_wait: float | None
    position: int | None
