"""`python -m bench.soak [--minutes N] [--connections N]`: the soak (package docstring).
Results: a table on stdout; the JSON and the logs in bench/runs/soak-<time>/ (ignored by
git); one line in bench/results/INDEX.md (bench/results_index.py)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from bench import results_index, stack
from bench.harness import Interrupted
from bench.load.jobs import RETRY_AFTER_CAP_S
from bench.phases import Runner
from bench.plan import QUICK
from bench.results_index import RUNS
from bench.run import (
    Session,
    command,
    interrupt_on_signals,
    machine,
    start,
    versions,
)
from bench.soak import long
from bench.soak.minutes import TABLES, merge, sample_minutes
from bench.soak.text import render
from bench.soak.verdicts import DRAIN_BOUND_S, verdicts
from bench.stack import Stack

# What the harness reads of a plan (request time-out, replay share, declined customers, the
# sandbox's latency and quota) is the same in every mode; the burst's rates are not used.
PLAN = replace(QUICK, mode="soak")
# The seeded coupons are sized for this many orders a second over the whole run, above the
# ~330 paid/s the stack sustains: a loop that spends the pool stops early (`no_coupon`).
POOL_RATE = 450
SANDBOX_FAULTS = {"error_rate": 0.05}  # answered 500/502/503 before anything is charged
DRAIN_WAIT_S = 600.0  # how long the drain is waited for, well past its bound: to report it
# The long soak (issue 30): offered at this share of the sustained rate, in windows of this
# many minutes, over this many keep-alive connections (enough that the slots never wait for a
# free one at a few hundred orders a second and tens of milliseconds an answer).
RATE_SHARE = 0.8
WINDOW_MINUTES = 5
PACED_CONNECTIONS = 16


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=sys.modules["bench.soak"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--minutes", type=_positive, default=None, help="minutes of load (default 20)"
    )
    parser.add_argument(
        "--orders",
        type=_positive,
        default=None,
        help="the long soak: offer orders at a fixed rate until this many were accepted "
        "(issue 30: 2000000), reported every --window-minutes",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="with --orders: new orders a second offered (default: --rate-share of the "
        "sustained paid/s of the latest full run in bench/results/)",
    )
    parser.add_argument(
        "--rate-share",
        type=float,
        default=RATE_SHARE,
        help=f"with --orders and no --rate: the share of the sustained rate (default {RATE_SHARE})",
    )
    parser.add_argument(
        "--window-minutes",
        type=_positive,
        default=WINDOW_MINUTES,
        help=f"with --orders: minutes per report window (default {WINDOW_MINUTES})",
    )
    parser.add_argument(
        "--connections",
        type=_positive,
        default=None,
        help="keep-alive connections: each a closed loop (default 4); with --orders the pool "
        f"the paced offer uses (default {PACED_CONNECTIONS})",
    )
    args = parser.parse_args(argv)
    if args.orders is not None and args.minutes is not None:
        parser.error("--minutes and --orders are two modes: give one")
    if args.orders is None:
        args.minutes = args.minutes or 20
        args.connections = args.connections or 4
    else:
        args.connections = args.connections or PACED_CONNECTIONS
    return args


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def soak_env() -> dict[str, str]:
    """The benchmark's environment, with the product's own backlog ceiling: `make bench`
    raises it for its scale probe, which the soak does not run, and a long run should meet the
    ceiling production has."""
    env = stack.stack_env(sandbox_quota_rps=PLAN.sandbox_quota_rps)
    env.pop("BACKLOG_CEILING")
    return env


def sandbox_faults() -> dict[str, Any]:
    """Set the sandbox's fault rates (it starts without); its whole configuration, as set."""
    response = httpx.post(
        f"{stack.SANDBOX_URL}/_sandbox/config",
        json=SANDBOX_FAULTS,
        headers=stack.SANDBOX_AUTH,
        timeout=10,
    )
    response.raise_for_status()
    config: dict[str, Any] = response.json()
    return config


def offer(runner: Runner, *, minutes: int, connections: int) -> dict[str, Any]:
    """Seed the coupons, then offer orders for `minutes`: the load's one step, summed."""
    seconds = minutes * 60
    began = time.time()
    runner.ensure_pool(int(seconds * POOL_RATE))
    print(
        f"  {runner.results.get('coupons_seeded', 0):,} coupons seeded in "
        f"{time.time() - began:.0f} s; offering orders for {minutes} min on {connections} "
        "keep-alive connections",
        flush=True,
    )
    spec = runner.spec("soak", "orders", "keepalive", [{"duration": seconds}])
    with runner.phase("soak", seconds):
        summary = runner.load.run({**spec, "connections": connections})
    runner.order_phases.append("soak")
    step: dict[str, Any] = summary["steps"][0]
    return step


def expired_orders(campaign_id: int) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM orders_order WHERE status = 'expired' AND campaign_id = %s",
            [campaign_id],
        )
        (count,) = cursor.fetchone()
    return int(count)


def after_drain(runner: Runner, orders: dict[str, Any], drain: Any) -> dict[str, Any]:
    """What both soaks report once the drain is over: the waits, what expired, the drain,
    the invariants, the seeding, peak memory, the database's waits, the load generator."""
    return {
        "after_load": orders["after_load"],
        "waits": orders["waits"],
        "expired": expired_orders(runner.fixtures.campaign_id),
        "drain": drain,
        "invariants": runner.results["invariants"],
        "coupons_seeded": runner.results.get("coupons_seeded", 0),
        "peak_rss": runner.sampler.peaks(),
        "db_waits": runner.results.get("db_waits", {}).get("soak"),
        "loadgen": runner.load.call("cpu"),
    }


def soak(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    """The load, the drain, the invariants, and the figures per minute."""
    load = offer(runner, minutes=args.minutes, connections=args.connections)
    with runner.phase("drain-soak"):
        drain = runner.drain("soak", DRAIN_WAIT_S)
    runner.invariants()
    orders = runner.load.call(
        "soak_minutes", phase="soak", start=load["t_start"], minutes=args.minutes
    )
    samples = sample_minutes(runner.sampler.rows, start=load["t_start"], minutes=args.minutes)
    return {
        "load": load,
        "minutes": merge(orders["minutes"], samples),
        **after_drain(runner, orders, drain),
    }


def long_soak(runner: Runner, args: argparse.Namespace, rate: float) -> dict[str, Any]:
    """The long soak (long.py): the paced offer until args.orders were accepted, then the
    same drain, invariants and minute table as the timed soak, and every window's figures
    read again once every callback is in."""
    offered = long.offer(runner, args, rate)
    load, start = offered["load"], offered["start"]
    end = float(load["t_end"])
    minutes = max(1, int((end - start) // 60))  # whole minutes: the last part is in the windows
    with runner.phase("drain-soak"):
        drain = runner.drain("soak", DRAIN_WAIT_S)
    runner.invariants()
    orders = runner.load.call("soak_minutes", phase="soak", start=start, minutes=minutes)
    samples = sample_minutes(runner.sampler.rows, start=start, minutes=minutes)
    return {
        "load": load,
        "minutes": merge(orders["minutes"], samples),
        "windows": long.windows(runner, start=start, end=end, minutes=args.window_minutes),
        "live_windows": offered["live_windows"],
        **after_drain(runner, orders, drain),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.time()
    commit = results_index.commit()  # before the run, whose index line changes the tree
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = RUNS / f"soak-{stamp}"
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = soak_env()
    os.environ.update(env)  # this process's own Django uses the stack's settings

    interrupt_on_signals()
    load_at_start = os.getloadavg()
    rate, rate_source = long.choose_rate(args) if args.orders else (0.0, "")
    what = (
        f"{args.orders:,} orders at {rate:g}/s ({rate_source}), reported every "
        f"{args.window_minutes} min,"
        if args.orders
        else f"{args.minutes} minutes"
    )
    print(
        f"soak, {what} on {args.connections} keep-alive connections; logs in "
        f"{logs}; load average {load_at_start[0]:.1f} at start",
        flush=True,
    )
    session = Session(stack=Stack(logs=logs, env=env))
    try:
        runner = start(session, PLAN, logs.parent, tables=TABLES)
        sandbox = sandbox_faults()
        res = long_soak(runner, args, rate) if args.orders else soak(runner, args)
        res["machine_load"] = {
            "loadavg_at_start": load_at_start,
            **runner.sampler.machine_between(began, time.time()),
        }
    except Interrupted as exc:
        print(f"interrupted ({exc}); stopping the stack", flush=True)
        return 130
    except stack.PortBusyError as exc:
        print(f"cannot start: {exc}", flush=True)
        return 2
    finally:
        session.close()
    res = {
        "mode": "soak",
        "command": command("bench.soak"),
        "started_at": datetime.fromtimestamp(began, UTC).isoformat(),
        "wall_seconds": time.time() - began,
        "settings": {
            "minutes": len(res["minutes"]),
            **(
                {
                    "orders": args.orders,
                    "rate": rate,
                    "rate_source": rate_source,
                    "window_minutes": args.window_minutes,
                }
                if args.orders
                else {}
            ),
            "connections": args.connections,
            "retry_after_cap_s": RETRY_AFTER_CAP_S,
            "decline_every": PLAN.decline_every,
            "replay_share": PLAN.replay_share,
            "request_timeout_s": PLAN.request_timeout,
            "drain_bound_s": DRAIN_BOUND_S,
            "sandbox": sandbox,
        },
        "machine": machine(),
        "versions": versions(),
        "env": {
            **{k: env[k] for k in stack.REPORTED_ENV if k in env},
            "BACKLOG_CEILING": "unset (the product's default)",
        },
        "autovacuum": "on for this run (the server's own setting is off)"
        if session.autovacuum_turned_on
        else "on (the server's own setting)",
        **res,
    }
    res["verdicts"] = [v.as_dict() for v in verdicts(res)]
    res["commit"] = commit
    path = run_dir / f"soak-{stamp}.json"
    path.write_text(json.dumps(res, indent=1, default=str) + "\n")
    results_index.append_written(path)
    print(render(res))
    print()
    print(results_index.recorded(run_dir))
    print(f"wall time: {res['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
