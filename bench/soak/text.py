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
from bench.soak.windows import not_judged


def render(res: R) -> str:
    s = res["settings"]
    summary = res["load"]
    lat = summary["latency_ms"]
    what = (
        f"{s['orders']:,} orders at {s['rate']:g}/s ({s['rate_source']}), {s['minutes']} whole "
        "minutes,"
        if "orders" in s
        else f"{s['minutes']} minutes"
    )
    parts = [
        f"\n=== soak, {what} on {s['connections']} keep-alive connections: {res['started_at']} ===",
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
        f"answer p50 {_fmt(lat['p50'], '.1f')} ms, p99 {_fmt(lat['p99'], '.1f')} ms"
        + (
            f"; the offer stopped on {summary['stopped_by']} after {summary['duration']:.0f} s, "
            f"{summary.get('late_slots', 0):,} slots sent over 0.1 s late (all connections "
            f"busy; the latest {summary.get('max_late_s', 0.0):.1f} s)"
            if "stopped_by" in summary
            else ""
        ),
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
        *(windows_section(res) if "windows" in res else []),
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


def kinds_table(rows: list[R], key: str, *, by: str = "minute", spec: str = ".0f") -> str:
    """One column per process kind of `key` (rss_mb, cpu_pct, cpu_ms_per_order), one row per
    minute (or per window: by="window")."""
    kinds = sorted({k for r in rows for k in r.get(key, {})})
    return _table(
        ["min" if by == "minute" else by, *kinds],
        [[str(r[by]), *(_fmt(r.get(key, {}).get(k), spec) for k in kinds)] for r in rows],
    )


def windows_section(res: R) -> list[str]:
    """The long soak's windows (windows.py): orders and accept-to-paid, CPU per order, RSS,
    the database and Redis; and what is reported but not judged flat."""
    rows = res["windows"]
    width = res["settings"]["window_minutes"]
    short = [t.removeprefix("orders_") for t in TABLES]
    return [
        f"\nWindows of {width} minutes (figures read after the drain; the last window may be "
        "shorter and is not judged). Orders: answers by arrival; accept-to-paid of the orders "
        "accepted in the window (202 to the paid callback)",
        _table(
            [
                "window",
                "202",
                "429",
                "failed",
                "paid",
                "ended otherwise",
                "no final",
                "to paid p50 s",
                "p99 s",
                "max s",
            ],
            [
                [
                    str(r["window"]),
                    *(
                        _fmt(r.get(k))
                        for k in (
                            "accepted",
                            "http_429",
                            "failed",
                            "paid",
                            "ended_otherwise",
                            "no_final_yet",
                        )
                    ),
                    *(
                        _fmt(r.get(k), ".2f")
                        for k in ("to_paid_p50_s", "to_paid_p99_s", "to_paid_max_s")
                    ),
                ]
                for r in rows
            ],
        ),
        "\nCPU ms per accepted order by process kind (all: every kind but the orchestrator); the"
        " machine: bench/yardstick.py's fixed work, CPU ms (mean), and CPU seconds stolen",
        _table(
            ["window", "all", "yardstick ms", "steal s"],
            [
                [
                    str(r["window"]),
                    _fmt(r.get("cpu_ms_per_order_total"), ".3f"),
                    _fmt(r.get("yardstick_ms"), ".3f"),
                    _fmt(r.get("steal_s"), ".1f"),
                ]
                for r in rows
            ],
        ),
        kinds_table(rows, "cpu_ms_per_order", by="window", spec=".3f"),
        "\nRSS by process kind at each window's end, MB",
        kinds_table(rows, "rss_mb", by="window", spec=".0f"),
        "\nDatabase and Redis (size at the window's end, growth per accepted order, dead tuples:"
        " mean of the 1 Hz samples; autovacuum / autoanalyze runs during the window)",
        _table(
            [
                "window",
                "size MB",
                "kB/order",
                *(f"dead {t}" for t in short),
                *(f"av/aa {t}" for t in short),
                "Redis MB",
            ],
            [
                [
                    str(r["window"]),
                    _fmt(r.get("db_mb"), ".0f"),
                    _fmt(r.get("db_kb_per_order"), ".2f"),
                    *(_fmt(r.get("dead_tuples_mean", {}).get(t)) for t in TABLES),
                    *(
                        f"{_fmt(r.get('autovacuums', {}).get(t))}/"
                        f"{_fmt(r.get('autoanalyzes', {}).get(t))}"
                        for t in TABLES
                    ),
                    _fmt(r.get("redis_mb"), ".1f"),
                ]
                for r in rows
            ],
        ),
        "reported, not judged flat: " + "; ".join(not_judged(rows)),
    ]


if __name__ == "__main__":
    sys.stdout.write(render(json.loads(Path(sys.argv[1]).read_text())) + "\n")
