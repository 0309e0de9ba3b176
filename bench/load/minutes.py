"""The soak's order figures per minute, from what the load generator recorded: answers by
the minute they arrived, final callbacks by the minute they arrived, and the promised
against the actual wait by the minute the order was accepted. Minute m covers
[start + 60 m, start + 60 (m + 1)) of the load. Pure functions: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bench.load.jobs import LONG_WAIT_S, Accepted, JsonDict, Result, percentile

MINUTE_S = 60.0
# The statuses that end an order's wait: its first terminal callback is its time to final.
FINALS = ("paid", "rejected", "payment_failed", "expired", "cancelled")
# The product promises whole seconds, at least 1: the estimate rounded up, so a promise of P
# seconds says "more than P - 1, at most P". Errors are relative to the wait, and a wait
# shorter than this is judged as if it had taken this long.
WAIT_FLOOR_S = 1.0
Callbacks = Mapping[str, Mapping[str, tuple[float, str, str]]]
# One accepted order's wait: (accepted at, promised s, actual s or None: no final callback).
Wait = tuple[float, float, float | None]


def wait_error(*, promised: float, actual: float) -> float:
    """How far the promise missed, relative to the wait: the distance from the actual wait to
    what a promise of whole seconds says, (promised - 1, promised], over
    max(actual, WAIT_FLOOR_S). 0 when the order was final within the promised second."""
    low = max(0.0, promised - 1.0)
    miss = actual - promised if actual > promised else max(0.0, low - actual)
    return miss / max(actual, WAIT_FLOOR_S)


def minute_of(t: float, *, start: float) -> int:
    return int((t - start) // MINUTE_S)


def order_minutes(
    *,
    results: Iterable[Result],
    accepted: Mapping[str, Accepted],
    callbacks: Callbacks,
    phase: str,
    start: float,
    minutes: int,
) -> JsonDict:
    """The order figures of each minute of `phase`, the finals that arrived after the load
    (the drain), and the waits over the whole phase."""
    rows: list[JsonDict] = [
        {"minute": m, "accepted": 0, "http_429": 0, "failed": 0, **dict.fromkeys(FINALS, 0)}
        for m in range(minutes)
    ]
    for r in results:
        m = minute_of(r.done, start=start)
        if r.phase != phase or r.kind != "orders" or not 0 <= m < minutes:
            continue
        rows[m]["accepted"] += r.accepted
        rows[m]["http_429"] += r.status == 429  # noqa: PLR2004
        rows[m]["failed"] += r.status >= 500 or (not r.status and r.error != "no_coupon")  # noqa: PLR2004
    after_load: dict[str, int] = dict.fromkeys(FINALS, 0)
    waits: list[Wait] = []
    for order_id, acc in accepted.items():
        if acc.phase != phase:
            continue
        final = first_final(callbacks.get(order_id, {}))
        if final is not None:
            status, arrived = final
            m = minute_of(arrived, start=start)
            counts = rows[m] if 0 <= m < minutes else after_load
            counts[status] += 1
        promised = float(acc.estimated_wait or 0)
        waits.append((acc.at, promised, None if final is None else final[1] - acc.at))
    by_minute: list[list[Wait]] = [[] for _ in range(minutes)]
    for wait in waits:
        m = minute_of(wait[0], start=start)
        if 0 <= m < minutes:
            by_minute[m].append(wait)
    for row, mine in zip(rows, by_minute, strict=True):
        row["waits"] = wait_figures(mine)
    return {"minutes": rows, "after_load": after_load, "waits": wait_figures(waits)}


def first_final(seen: Mapping[str, tuple[float, str, str]]) -> tuple[str, float] | None:
    """(status, arrival) of an order's first terminal callback, or None."""
    finals = [(arrived, status) for status, (arrived, _, _) in seen.items() if status in FINALS]
    if not finals:
        return None
    arrived, status = min(finals)
    return status, arrived


def wait_figures(waits: list[Wait]) -> JsonDict:
    """Promised and actual waits and the error (wait_error) of orders with a final callback;
    those without one are counted apart, never dropped silently."""
    done = [(promised, actual) for _, promised, actual in waits if actual is not None]
    promised = sorted(p for p, _ in done)
    actual = sorted(a for _, a in done)
    errors = sorted(wait_error(promised=p, actual=a) for p, a in done)
    long = sorted(wait_error(promised=p, actual=a) for p, a in done if a >= LONG_WAIT_S)
    return {
        "orders": len(waits),
        "no_final": len(waits) - len(done),
        "promised_p50_s": percentile(promised, 50),
        "promised_p90_s": percentile(promised, 90),
        "actual_p50_s": percentile(actual, 50),
        "actual_p90_s": percentile(actual, 90),
        "within_promise": sum(a <= p for p, a in done) / len(done) if done else None,
        "error_p50": percentile(errors, 50),
        "error_p90": percentile(errors, 90),
        "long_waits": len(long),
        "long_wait_error_p90": percentile(long, 90),
    }
