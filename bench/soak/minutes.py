"""The soak's per-minute table: the load generator's order figures (bench/load/minutes.py)
beside the orchestrator's 1 Hz samples, the last one taken by each minute's end: the backlog
of each stage, memory, the database's size, dead tuples and autovacuum runs. Pure functions.
"""

from __future__ import annotations

from typing import Any

from bench.load.jobs import JsonDict
from bench.load.minutes import MINUTE_S

# The tables whose dead tuples and autovacuum runs the soak follows (bench.measure.Sampler).
TABLES = ("orders_order", "orders_payment", "orders_reservation")


def sample_minutes(samples: list[dict[str, Any]], *, start: float, minutes: int) -> list[JsonDict]:
    """Per minute, from the last sample by its end: the backlog of each stage, RSS of every
    process kind (MB), the database's size (MB), dead tuples of TABLES; and since the minute
    before: autovacuum runs on each of TABLES (the server's counters, kept across runs) and
    the CPU of every process kind and of the machine's other processes (% of one core)."""
    rows: list[JsonDict] = []
    before = _last_before(samples, start) or (samples[0] if samples else None)
    for m in range(minutes):
        last = _last_before(samples, start + (m + 1) * MINUTE_S)
        if before is None or last is None or last["t"] <= before["t"]:
            rows.append({})
            continue
        rows.append(
            {
                "received": last.get("received"),
                "reserved": last.get("reserved"),
                "callbacks_pending": last.get("callbacks_pending"),
                "rss_mb": {kind: round(b / 2**20) for kind, b in sorted(last["rss"].items())},
                "db_mb": round(last["db_bytes"] / 2**20) if "db_bytes" in last else None,
                "dead_tuples": {t: last.get("dead_tuples", {}).get(t) for t in TABLES},
                "autovacuums": {
                    t: last.get("autovacuums", {}).get(t, 0)
                    - before.get("autovacuums", {}).get(t, 0)
                    for t in TABLES
                },
                "cpu_pct": _cpu_pct(before, last),
            }
        )
        before = last
    return rows


def _cpu_pct(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """% of one core each process kind used between two samples, and `others`: the machine's
    busy time outside this benchmark (another engineer's tests share these cores)."""
    seconds = after["t"] - before["t"]
    used = {k: v - before["cpu"].get(k, 0.0) for k, v in after["cpu"].items()}
    others = after["machine_busy"] - before["machine_busy"] - sum(used.values())
    return {
        kind: round(100 * cpu / seconds)
        for kind, cpu in sorted({**used, "others": max(0.0, others)}.items())
    }


def _last_before(samples: list[dict[str, Any]], t: float) -> dict[str, Any] | None:
    return max((s for s in samples if s["t"] <= t), key=lambda s: s["t"], default=None)


def merge(orders: list[JsonDict], samples: list[JsonDict]) -> list[JsonDict]:
    """One row per minute: the order figures and the samples' side by side."""
    return [{**o, **s} for o, s in zip(orders, samples, strict=True)]
