"""The long soak (`python -m bench.soak --orders N [--rate R]`, docs/soak.md):
orders offered at a fixed rate over a pool of keep-alive connections until N were accepted
(bench/load/paced.py), a progress line every minute and a report every window, then the
soak's own drain, invariants, minute table and verdicts, with each window's figures judged
flat (windows.py)."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

from bench.load.minutes import MINUTE_S
from bench.phases import Runner
from bench.results_index import RESULTS
from bench.soak.windows import sample_window, window_bounds, window_row

# A paced offer that falls behind (429s) still ends: at most this many times the expected
# time, plus this many seconds.
SLOW_FACTOR = 3.0
SLOW_SLACK_S = 600.0
# A window is reported live once this long after its end, so that its orders' callbacks
# have arrived (the target for accept-to-paid p99 is 2 s); the final report reads them again
# after the drain.
LIVE_LAG_S = 30.0
# Coupons seeded beyond the target: requests answered 429 or failed spend their coupon, so
# the pool is also topped up each minute for the orders still to accept (a run on a busy
# machine answered 11 % of its orders 429 and spent a 5 % margin short of its target).
POOL_MARGIN = 0.05


def sustained_rate(results: Path = RESULTS) -> tuple[float, str]:
    """The sustained paid/s of the latest full run kept in bench/results/ (its end-to-end
    main run when sustained, else its best sustained probe), and where it was read."""
    files = sorted(results.glob("full-*.json"))
    if not files:
        raise SystemExit("no full run in bench/results/: give --rate")
    res = json.loads(files[-1].read_text())
    e2e = res["e2e"]
    held = [r for r in [e2e["main"], *e2e["probes"]] if r["sustained"]]
    if not held:
        raise SystemExit(f"{files[-1].name} sustained no end-to-end rate: give --rate")
    best = e2e["main"] if e2e["main"]["sustained"] else max(held, key=lambda r: r["paid_per_s"])
    which = "main run" if best is e2e["main"] else "best sustained probe"
    return float(best["paid_per_s"]), f"{files[-1].name} ({which}, {best['rate']:.0f}/s offered)"


def choose_rate(args: argparse.Namespace) -> tuple[float, str]:
    if args.rate is not None:
        return args.rate, "given (--rate)"
    sustained, source = sustained_rate()
    return (
        round(args.rate_share * sustained, 1),
        f"{args.rate_share:.0%} of {sustained:.0f} paid/s sustained in {source}",
    )


def _hms(seconds: float) -> str:
    h, rest = divmod(int(seconds), 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"


def offer(runner: Runner, args: argparse.Namespace, rate: float) -> dict[str, Any]:
    """Seed the coupons, offer until args.orders are accepted, print a line each minute and
    each window's report; the load's step, the live windows and the offer's start."""
    expected = args.orders / rate
    began = time.time()
    runner.ensure_pool(int(args.orders * (1 + POOL_MARGIN)) + 1000)
    print(
        f"  {runner.results.get('coupons_seeded', 0):,} coupons seeded in "
        f"{time.time() - began:.0f} s; offering {args.orders:,} orders at {rate:g}/s on "
        f"{args.connections} keep-alive connections: about {_hms(expected)} "
        f"(then the drain and the invariants)",
        flush=True,
    )
    cap = expected * SLOW_FACTOR + SLOW_SLACK_S
    spec = runner.spec("soak", "orders", "paced", [{"duration": cap}])
    spec.update(rate=rate, orders=args.orders, connections=args.connections)
    live: list[dict[str, Any]] = []
    with runner.phase("soak", expected):
        runner.load.call("start", spec=spec)
        while "t_start" not in (state := runner.load.call("progress")):
            time.sleep(0.01)
        start = float(state["t_start"])
        progress = follow(runner, args, start=start, expected=expected, live=live)
    runner.order_phases.append("soak")
    step: dict[str, Any] = progress["summary"]["steps"][0]
    step["stopped_by"] = progress["stop"]
    step["late_slots"] = progress["late"]  # sent over LATE_S after due: connections all busy
    step["max_late_s"] = progress["max_late_s"]
    return {"load": step, "live_windows": live, "start": start}


def follow(
    runner: Runner,
    args: argparse.Namespace,
    *,
    start: float,
    expected: float,
    live: list[dict[str, Any]],
) -> dict[str, Any]:
    """Each minute of the offer a progress line; each window, LIVE_LAG_S after its end, its
    report; until the offer ends. The last progress (with the load's summary)."""
    width = args.window_minutes * MINUTE_S
    minute, before = 1, 0
    while True:
        wake = start + minute * MINUTE_S
        while time.time() < wake:
            time.sleep(min(1.0, wake - time.time()))
            progress = runner.load.call("progress")
            if progress["done"]:
                return progress
        runner.stack.check_alive()
        progress = runner.load.call("progress")
        # Orders answered 429 spend their coupon: top the pool up for what is left to accept.
        runner.ensure_pool(int((args.orders - progress["accepted"]) * (1 + POOL_MARGIN)) + 1000)
        last = runner.sampler.rows[-1] if runner.sampler.rows else {}
        done = progress["accepted"]
        left = (args.orders - done) / max(1e-9, (done / (time.time() - start)))
        print(
            f"  min {minute - 1:>4}: {done:>10,} accepted ({done / args.orders:6.1%}), "
            f"{(done - before) / MINUTE_S:6.1f}/s this minute; backlog received "
            f"{last.get('received', '-')}, reserved {last.get('reserved', '-')}, callbacks "
            f"{last.get('callbacks_pending', '-')}; {progress.get('late', 0):,} slots sent "
            f"late; about {_hms(left)} left "
            f"(planned {_hms(expected)} in all)",
            flush=True,
        )
        before = done
        w = len(live)
        w_end = start + (w + 1) * width
        if time.time() >= w_end + LIVE_LAG_S:
            row = window(runner, w, start=start + w * width, end=w_end)
            live.append(row)
            print(window_line(row), flush=True)
        minute += 1


def window(runner: Runner, index: int, *, start: float, end: float) -> dict[str, Any]:
    orders = runner.load.call("window", phase="soak", start=start, end=end)
    samples = sample_window(runner.sampler.rows, start=start, end=end)
    return window_row(index, start=start, end=end, orders=orders, samples=samples)


def windows(runner: Runner, *, start: float, end: float, minutes: int) -> list[dict[str, Any]]:
    """Every window of the offer, read again after the drain (every callback in)."""
    return [
        window(runner, i, start=a, end=b)
        for i, (a, b) in enumerate(window_bounds(start, end, minutes))
    ]


def window_line(row: dict[str, Any]) -> str:
    """A window's report in a few lines, as printed while the soak runs."""
    cpu = row.get("cpu_ms_per_order", {})
    rss = row.get("rss_mb", {})
    dead = row.get("dead_tuples_mean", {})
    av = row.get("autovacuums", {})
    aa = row.get("autoanalyzes", {})
    p50, p99 = row.get("to_paid_p50_s"), row.get("to_paid_p99_s")
    return "\n".join(
        [
            f"  == window {row['window']} ({(row['end'] - row['start']) / 60:.0f} min): "
            f"{row.get('accepted', 0):,} accepted, {row.get('paid', 0):,} paid, "
            f"{row.get('http_429', 0):,} 429s, {row.get('failed', 0):,} failed; accept-to-paid "
            f"p50 {_f(p50, '.2f')} s, p99 {_f(p99, '.2f')} s",
            f"     CPU ms/order: all {_f(row.get('cpu_ms_per_order_total'), '.2f')}; "
            + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
            + f"; machine yardstick {_f(row.get('yardstick_ms'), '.2f')} ms, "
            f"steal {_f(row.get('steal_s'), '.1f')} s",
            "     RSS MB: " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()),
            f"     database {_f(row.get('db_mb'), '.0f')} MB "
            f"(+{_f(row.get('db_kb_per_order'), '.2f')} kB/order); dead tuples (mean) "
            + ", ".join(f"{t.removeprefix('orders_')} {n:,}" for t, n in dead.items())
            + "; autovacuum/autoanalyze runs "
            + ", ".join(f"{t.removeprefix('orders_')} {av[t]}/{aa.get(t, '-')}" for t in av)
            + f"; Redis used_memory {_f(row.get('redis_mb'), '.1f')} MB",
        ]
    )


def _f(value: float | None, spec: str) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )
