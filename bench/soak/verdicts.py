"""The soak's verdicts, from its results (the per-minute table, the waits, the drain, the
invariants, the expired count): each a bench.report Verdict, printed and stored in the JSON."""

from __future__ import annotations

from typing import Any

from bench.load.minutes import MINUTE_S
from bench.report.verdicts import Verdict
from bench.soak.windows import flat_verdicts

R = dict[str, Any]

WARMUP_MINUTES = 1  # minute 0: empty caches, and the line's drain rate not yet measured
FLAT_WINDOW_MINUTES = 5
FLAT_TOLERANCE = 0.10  # paid/s of the last minutes within this share of the first minutes'
WAIT_ERROR_P90 = 0.25
# After the clients stop, what is left (the last seconds' orders, payments retried after a
# gateway fault, their callbacks) is done within this bound when nothing has piled up.
DRAIN_BOUND_S = 60.0


def flat_windows(minutes: int) -> tuple[range, range] | None:
    """The first and the last minutes whose paid rates are compared: up to
    FLAT_WINDOW_MINUTES each after the warm-up, never overlapping; None under two minutes."""
    judged = range(WARMUP_MINUTES, minutes)
    width = min(FLAT_WINDOW_MINUTES, len(judged) // 2)
    if width == 0:
        return None
    return judged[:width], judged[-width:]


def paid_per_s(rows: list[R], window: range) -> float:
    return sum(rows[m]["paid"] for m in window) / (len(window) * MINUTE_S)


def verdicts(res: R) -> list[Verdict]:
    """The timed soak's verdicts; the long soak's (`windows` in its results) add whether
    each window figure stayed flat (windows.py)."""
    flat = (
        flat_verdicts(res["windows"], res["settings"]["window_minutes"]) if "windows" in res else []
    )
    return [
        _paid_flat(res["minutes"]),
        Verdict(
            "orders expired",
            res["expired"],
            1,
            "orders",
            False,
            "orders in status expired after the drain (database)",
        ),
        _wait(res["waits"]),
        Verdict(
            "accepted orders without a final callback",
            res["waits"]["no_final"],
            1,
            "orders",
            False,
        ),
        _invariants(res["invariants"]),
        _drain(res["drain"]),
        *flat,
    ]


def _paid_flat(rows: list[R]) -> Verdict:
    name = "paid/s flat: last minutes vs first (minute 0 is warm-up, skipped)"
    windows = flat_windows(len(rows))
    if windows is None:
        return Verdict(name, None, FLAT_TOLERANCE, "fraction", False, "needs 3 minutes or more")
    first, last = windows
    before, after = paid_per_s(rows, first), paid_per_s(rows, last)
    return Verdict(
        name,
        abs(after - before) / max(before, 1.0),
        FLAT_TOLERANCE,
        "fraction",
        False,
        f"{_span(first)}: {before:.0f} paid/s{_others(rows, first)}; "
        f"{_span(last)}: {after:.0f} paid/s{_others(rows, last)}",
    )


def _others(rows: list[R], window: range) -> str:
    """The machine's CPU outside the benchmark in a window: a closed loop takes what is left,
    so another process's work alone can tilt the comparison."""
    shares = [rows[m]["cpu_pct"]["others"] for m in window if "cpu_pct" in rows[m]]
    if not shares:
        return ""
    return f" (others used {sum(shares) / len(shares):.0f} % of a core)"


def _span(window: range) -> str:
    return f"minutes {window[0]}-{window[-1]}" if len(window) > 1 else f"minute {window[0]}"


def _wait(waits: R) -> Verdict:
    long = (
        f"; {waits['long_waits']} waited 5 s or more, their p90 error "
        f"{waits['long_wait_error_p90']:.2f}"
        if waits["long_waits"]
        else "; none waited 5 s or more"
    )
    return Verdict(
        "wait to final: p90 of how far the wait fell outside the promised second, over the wait",
        waits["error_p90"],
        WAIT_ERROR_P90,
        "fraction",
        False,
        f"over {waits['orders'] - waits['no_final']:,} accepted orders with a final callback; "
        f"promised p50 {_s(waits['promised_p50_s'])} / p90 {_s(waits['promised_p90_s'])}, "
        f"actual p50 {_s(waits['actual_p50_s'])} / p90 {_s(waits['actual_p90_s'])}; "
        f"{_pct(waits['within_promise'])} final within the promise" + long,
    )


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f} %"


def _invariants(inv: R) -> Verdict:
    broken = {check: n for check, n in inv["violations"].items() if n}
    return Verdict(
        "invariant violations (stock, coupons, budget, charges, terminal)",
        sum(broken.values()),
        1,
        "",
        False,
        ", ".join(f"{check} {n}" for check, n in broken.items()),
    )


def _drain(drain: R) -> Verdict:
    left = (
        f"drained from {drain['orders_at_start']:,} orders and "
        f"{drain['callbacks_at_start']:,} callbacks"
        if drain["drained"]
        else f"NOT drained within the {drain['cap']:.0f} s wait: {drain['orders_left']:,} "
        f"orders and {drain['callbacks_left']:,} callbacks left"
    )
    return Verdict(
        "backlog drained after the clients stopped",
        drain["seconds"],
        DRAIN_BOUND_S,
        "s",
        False,
        left,
    )
