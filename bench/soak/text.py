"""The soak's report on stdout: the run, the per-minute tables (orders, waits, the database,
memory) and the verdicts. `python -m bench.soak.text bench/runs/soak-<time>/soak-<time>.json`
prints a stored run again."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.load.minutes import WAIT_FLOOR_S
from bench.report.tables import _fmt, _table
from bench.report.text import targets
from bench.soak.minutes import TABLES
from bench.soak.verdicts import R, verdicts


def render(res: R) -> str:
    s = res["settings"]
    summary = res["load"]
    lat = summary["latency_ms"]
    parts = [
        f"\n=== soak, {s['minutes']} minutes on {s['connections']} keep-alive connections: "
        f"{res['started_at']} ===",
        f"command: {res['command']}",
        f"machine: {res['machine']['cpus']} CPUs ({res['machine']['cpu_model']}), "
        f"{res['machine']['memory_gb']} GB; "
        + ", ".join(f"{k} {v}" for k, v in res["versions"].items()),
        f"sandbox: {s['sandbox']}; PostgreSQL autovacuum: {res['autovacuum']}",
        f"env: {', '.join(f'{k}={v}' for k, v in res['env'].items())}",
        f"load: {summary['requests']:,} requests, {summary['accepted']:,} orders accepted "
        f"({summary['accepted_per_s']:.0f}/s), {summary['replays']:,} replays, "
        f"429 {summary['http_429']:,}, 5xx {summary['http_5xx']:,}, time-outs "
        f"{summary['timeouts']:,}, pool spent {summary['errors'].get('no_coupon', 0):,}; "
        f"answer p50 {_fmt(lat['p50'], '.1f')} ms, p99 {_fmt(lat['p99'], '.1f')} ms",
        "\nOrders per minute (answers by arrival, finals by their first terminal callback; "
        "backlog at the minute's end: received = in line, reserved = waiting for payment)",
        orders_table(res["minutes"]),
        "after the load, during the drain: "
        + ", ".join(f"{k} {v:,}" for k, v in res["after_load"].items() if v),
        f"\nWaits by minute of acceptance (promised = the 202's queue.estimated_wait_seconds; "
        f"actual = 202 to the first final callback; error = how far the actual wait fell "
        f"outside the promised second (P - 1, P], over max(actual, {WAIT_FLOOR_S:.0f} s))",
        waits_table(res["minutes"]),
        "\nDatabase at each minute's end (dead tuples; autovacuum runs during the minute)",
        database_table(res["minutes"]),
        "\nRSS by process kind at each minute's end, MB (loadgen keeps every order's record)",
        kinds_table(res["minutes"], "rss_mb"),
        "\nCPU by process kind during each minute, % of one core of 2 (others: processes "
        "outside the benchmark)",
        kinds_table(res["minutes"], "cpu_pct"),
        "\nVerdicts",
        *targets(verdicts(res)),
    ]
    return "\n".join(parts)


# (header, key) of the orders table's columns after the minute.
ORDER_COLUMNS = (
    ("202", "accepted"),
    ("429", "http_429"),
    ("failed", "failed"),
    ("paid", "paid"),
    ("rejected", "rejected"),
    ("pay failed", "payment_failed"),
    ("expired", "expired"),
    ("received", "received"),
    ("reserved", "reserved"),
    ("callbacks", "callbacks_pending"),
)


def orders_table(rows: list[R]) -> str:
    return _table(
        ["min", *(header for header, _ in ORDER_COLUMNS)],
        [[str(r["minute"]), *(_fmt(r.get(key)) for _, key in ORDER_COLUMNS)] for r in rows],
    )


def waits_table(rows: list[R]) -> str:
    return _table(
        ["min", "orders", "no final", "promised p50", "p90", "actual p50", "p90", "error p90"],
        [
            [
                str(r["minute"]),
                _fmt(r["waits"]["orders"]),
                _fmt(r["waits"]["no_final"]),
                *(
                    _fmt(r["waits"][k], ".2f")
                    for k in ("promised_p50_s", "promised_p90_s", "actual_p50_s", "actual_p90_s")
                ),
                _fmt(r["waits"]["error_p90"], ".2f"),
            ]
            for r in rows
        ],
    )


def database_table(rows: list[R]) -> str:
    short = [t.removeprefix("orders_") for t in TABLES]
    return _table(
        ["min", "size MB", *(f"dead {t}" for t in short), *(f"autovac {t}" for t in short)],
        [
            [
                str(r["minute"]),
                _fmt(r.get("db_mb")),
                *(_fmt(r.get("dead_tuples", {}).get(t)) for t in TABLES),
                *(_fmt(r.get("autovacuums", {}).get(t)) for t in TABLES),
            ]
            for r in rows
        ],
    )


def kinds_table(rows: list[R], key: str) -> str:
    """One column per process kind of `key` (rss_mb, cpu_pct), one row per minute."""
    kinds = sorted({k for r in rows for k in r.get(key, {})})
    return _table(
        ["min", *kinds],
        [[str(r["minute"]), *(_fmt(r.get(key, {}).get(k)) for k in kinds)] for r in rows],
    )


if __name__ == "__main__":
    sys.stdout.write(render(json.loads(Path(sys.argv[1]).read_text())) + "\n")
