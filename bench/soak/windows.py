"""The long soak's windows (docs/soak.md): every `--window-minutes` (5) of the
offer, the order figures the load generator recorded (bench/load/paced.py window_orders)
beside the orchestrator's 1 Hz samples (bench/measure.py), and whether each figure stayed
flat from the first 10 minutes to the last. Pure functions over recorded figures.

A window's figures:
- CPU ms per accepted order of every process kind: the kind's CPU seconds in the window
  over the orders accepted (202) in it;
- RSS of every process kind at the window's end (MB);
- the database: its size at the end, its growth per accepted order (kB), the mean of the
  1 Hz samples of the hot tables' dead tuples, and their autovacuum and autoanalyze runs;
- Redis: INFO used_memory at the end (MB);
- of the orders accepted in the window, the time from the 202 to the `paid` callback: p50,
  p99 and the count paid;
- the machine: the mean CPU ms of the fixed work of bench/yardstick.py (timed every few
  samples) and the CPU seconds the hypervisor stole.

The CPU per order of each kind is judged twice: as measured, and at the first windows' machine
speed (measured over the yardstick's change), so that a machine that slowed down is told
apart from a process that does more work per order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.report.verdicts import Verdict
from bench.soak.minutes import TABLES

R = dict[str, Any]

FLAT_SPAN_MINUTES = 10  # the rule: the first 10 minutes against the last 10
FLAT_TOLERANCE = 0.10
# Process kinds whose memory grows by design, with why: reported, not judged flat.
GROWS_BY_DESIGN = {
    "loadgen": "keeps every order's request, answer and callbacks to compute the waits",
    "sandbox": "the gateway's ledger keeps every charge in memory, as a gateway's books do",
}
# Process kinds that are not the pipeline (measured, not judged per order).
NOT_JUDGED_CPU = {"orchestrator": "the benchmark's own sampling"}


def sample_window(samples: list[R], *, start: float, end: float) -> R:
    """The sampler's side of [start, end): CPU seconds by kind, RSS and levels at the end,
    the mean dead tuples over the window's samples, runs of autovacuum and autoanalyze in it.
    Empty when no sample brackets the window."""
    first = _last_before(samples, start)
    last = _last_before(samples, end)
    if first is None or last is None or last["t"] <= first["t"]:
        return {}
    inside = [s for s in samples if first["t"] <= s["t"] <= last["t"] and "dead_tuples" in s]
    row: R = {
        "seconds": last["t"] - first["t"],
        "cpu_s": {k: v - first["cpu"].get(k, 0.0) for k, v in sorted(last["cpu"].items())},
        "rss_mb": {k: round(b / 2**20, 1) for k, b in sorted(last["rss"].items())},
    }
    if "db_bytes" in last and "db_bytes" in first:
        row["db_mb"] = round(last["db_bytes"] / 2**20, 1)
        row["db_growth_bytes"] = last["db_bytes"] - first["db_bytes"]
    if inside:
        row["dead_tuples_mean"] = {
            t: round(sum(s["dead_tuples"].get(t, 0) for s in inside) / len(inside)) for t in TABLES
        }
        row["dead_tuples_max"] = {
            t: max(s["dead_tuples"].get(t, 0) for s in inside) for t in TABLES
        }
    for key in ("autovacuums", "autoanalyzes"):
        if key in last:
            row[key] = {t: last[key].get(t, 0) - first.get(key, {}).get(t, 0) for t in TABLES}
    if "redis_used_memory" in last:
        row["redis_mb"] = round(last["redis_used_memory"] / 2**20, 2)
    yardsticks = [
        s["yardstick_ms"]
        for s in samples
        if first["t"] < s["t"] <= last["t"] and "yardstick_ms" in s
    ]
    if yardsticks:
        row["yardstick_ms"] = round(sum(yardsticks) / len(yardsticks), 3)
    if "machine_steal" in last and "machine_steal" in first:
        row["steal_s"] = round(last["machine_steal"] - first["machine_steal"], 1)
    return row


def window_row(index: int, *, start: float, end: float, orders: R, samples: R) -> R:
    """One window: the order figures, the samples, and the per-order figures from both."""
    accepted = orders.get("accepted", 0)
    row: R = {"window": index, "start": start, "end": end, **orders, **samples}
    if accepted and "cpu_s" in samples:
        row["cpu_ms_per_order"] = {
            k: round(v * 1000 / accepted, 3) for k, v in samples["cpu_s"].items()
        }
        row["cpu_ms_per_order_total"] = round(
            sum(v for k, v in samples["cpu_s"].items() if k not in NOT_JUDGED_CPU)
            * 1000
            / accepted,
            3,
        )
    if accepted and "db_growth_bytes" in samples:
        row["db_kb_per_order"] = round(samples["db_growth_bytes"] / 1024 / accepted, 3)
    return row


def window_bounds(start: float, end: float, minutes: int) -> list[tuple[float, float]]:
    """[start, end) cut into windows of `minutes`, the last one possibly shorter."""
    width = minutes * 60.0
    count = max(1, math.ceil((end - start) / width - 1e-9))
    return [(start + i * width, min(end, start + (i + 1) * width)) for i in range(count)]


# --- flat or not -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One judged figure: its name, how to read it from a window (None: not there), its
    unit, and the noise floor: a change no larger than this passes whatever the share (a
    share of a small count says nothing: 1 autovacuum run against 2 is +100 %)."""

    name: str
    read: Callable[[R], float | None]
    unit: str
    floor: float


def figures(rows: list[R]) -> list[Figure]:
    """Every figure judged flat, from the kinds and tables the windows hold."""
    kinds = sorted({k for r in rows for k in r.get("cpu_ms_per_order", {})})
    out = [
        Figure(f"CPU per order: {k}", _at("cpu_ms_per_order", k), "ms", 0.02)
        for k in kinds
        if k not in NOT_JUDGED_CPU
    ]
    out.append(
        Figure("CPU per order: all our processes", _at("cpu_ms_per_order_total"), "ms", 0.05)
    )
    rss_kinds = sorted({k for r in rows for k in r.get("rss_mb", {})})
    out += [
        Figure(f"RSS: {k}", _at("rss_mb", k), "MB", 5.0)
        for k in rss_kinds
        if k not in GROWS_BY_DESIGN
    ]
    out.append(Figure("database growth per order", _at("db_kb_per_order"), "kB", 0.05))
    for t in TABLES:
        short = t.removeprefix("orders_")
        out += [
            Figure(f"dead tuples (mean): {short}", _at("dead_tuples_mean", t), "tuples", 1000),
            Figure(f"autovacuum runs: {short}", _at("autovacuums", t), "runs", 1),
            Figure(f"autoanalyze runs: {short}", _at("autoanalyzes", t), "runs", 1),
        ]
    out += [
        Figure("Redis used_memory", _at("redis_mb"), "MB", 1.0),
        Figure("accept-to-paid p50", _at("to_paid_p50_s"), "s", 0.05),
        Figure("accept-to-paid p99", _at("to_paid_p99_s"), "s", 0.05),
    ]
    return out


def _at(key: str, sub: str | None = None) -> Callable[[R], float | None]:
    def read(row: R) -> float | None:
        value = row.get(key)
        if sub is not None:
            value = value.get(sub) if isinstance(value, dict) else None
        return None if value is None else float(value)

    return read


def flat_spans(rows: list[R], window_minutes: int) -> tuple[list[R], list[R]] | None:
    """The full windows covering the first FLAT_SPAN_MINUTES and the last as many, never
    overlapping: fewer when the run is shorter than twice that; None under two full windows.
    A window is full when it lasted its `window_minutes` (the last one rarely does)."""
    full = [r for r in rows if r["end"] - r["start"] >= window_minutes * 60.0 - 1.0]
    width = min(math.ceil(FLAT_SPAN_MINUTES / window_minutes), len(full) // 2)
    if width == 0:
        return None
    return full[:width], full[-width:]


def flat_verdicts(rows: list[R], window_minutes: int) -> list[Verdict]:
    """For each figure, the mean over the first span's windows against the last span's:
    measured is the change as a share of the first (0 when within the figure's noise floor),
    passing under FLAT_TOLERANCE."""
    spans = flat_spans(rows, window_minutes)
    if spans is None:
        return [
            Verdict(
                "flat: every figure",
                None,
                FLAT_TOLERANCE,
                "fraction",
                False,
                "needs two full windows or more",
            )
        ]
    first, last = spans
    label = f"windows {_span(first)} against {_span(last)}"
    out = []
    for fig in figures(rows):
        before, after = _mean(fig.read, first), _mean(fig.read, last)
        if before is None or after is None:
            out.append(
                Verdict(
                    f"flat: {fig.name}",
                    None,
                    FLAT_TOLERANCE,
                    "fraction",
                    False,
                    f"not measured in {label}",
                )
            )
            continue
        share, within_floor = _change(before, after, fig.floor)
        note = f"{_v(before)} → {_v(after)} {fig.unit} ({label})" + (
            f"; within the noise floor of {_v(fig.floor)} {fig.unit}" if within_floor else ""
        )
        out.append(Verdict(f"flat: {fig.name}", share, FLAT_TOLERANCE, "fraction", False, note))
    return out + at_first_speed(rows, first, last, label)


def at_first_speed(rows: list[R], first: list[R], last: list[R], label: str) -> list[Verdict]:
    """The CPU-per-order figures again, the last span's taken back to the first span's machine
    speed: divided by how much longer the yardstick's fixed work took. None without a
    yardstick in both spans (runs before it, or the quick soak)."""
    read = _at("yardstick_ms")
    before_ms, after_ms = _mean(read, first), _mean(read, last)
    if not before_ms or not after_ms:
        return []
    slower = after_ms / before_ms
    machine = f"the yardstick {before_ms:.3g} → {after_ms:.3g} ms ({slower - 1:+.0%})"
    out = []
    for fig in figures(rows):
        if not fig.name.startswith("CPU per order"):
            continue
        before, after = _mean(fig.read, first), _mean(fig.read, last)
        if before is None or after is None:
            continue
        adjusted = after / slower
        share, _ = _change(before, adjusted, fig.floor)
        note = (
            f"{_v(before)} → {_v(adjusted)} {fig.unit} at the first speed ({_v(after)} as "
            f"measured; {machine}; {label})"
        )
        name = f"flat at the first windows' machine speed: {fig.name}"
        out.append(Verdict(name, share, FLAT_TOLERANCE, "fraction", False, note))
    return out


def _change(before: float, after: float, floor: float) -> tuple[float, bool]:
    """(the change as a share of `before`, 0 within the noise floor; whether it was within)."""
    within_floor = abs(after - before) <= floor
    return (0.0 if within_floor else abs(after - before) / max(abs(before), 1e-9)), within_floor


def not_judged(rows: list[R]) -> list[str]:
    """The figures reported but not judged flat, each with why."""
    kinds = {k for r in rows for k in r.get("rss_mb", {})}
    return [f"RSS of {k}: {why}" for k, why in GROWS_BY_DESIGN.items() if k in kinds] + [
        f"CPU of {k}: {why}" for k, why in NOT_JUDGED_CPU.items()
    ]


def _mean(read: Callable[[R], float | None], rows: list[R]) -> float | None:
    values = [v for v in map(read, rows) if v is not None]
    return sum(values) / len(values) if values else None


def _span(rows: list[R]) -> str:
    a, b = rows[0]["window"], rows[-1]["window"]
    return f"{a}" if a == b else f"{a}-{b}"


def _v(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"  # noqa: PLR2004  (3 digits)


def _last_before(samples: list[R], t: float) -> R | None:
    return max((s for s in samples if s["t"] <= t), key=lambda s: s["t"], default=None)
