"""The campaign-burst benchmark: `python -m bench.run --mode quick|full` (make bench-quick,
make bench). Phases, in order, all against one stack started here:

1. floors: closed loop (32 connections) on the bare DRF GET and insert, and the drain rate
   of a Celery no-op task, on the same gunicorn and worker configuration as the product;
2. claims: open loop at a schedule of rates, then a closed-loop saturation probe;
3. intake: orders with the claimed (then seeded) coupons, open loop at a schedule of rates,
   then saturation; the pipeline's drain rate is measured as the backlog empties;
4. end to end: orders for pre-claimed customers at a fixed rate, statuses by callback; full
   mode first searches the highest rate whose backlog stays flat, then holds it 5 minutes;
5. overload: 2 x and 5 x the intake saturation; then the invariants, once all is terminal;
6. the scale probe (bench/scale.py).
Results: a table on stdout; the JSON, the chart (.png), the logs and any profiles in
bench/runs/<mode>-<time>/ (ignored by git); one line in bench/results/INDEX.md; a plain full
run's JSON and chart also replace the previous ones in bench/results/ (bench/results_index.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from bench import report, results_index, seed, stack
from bench.harness import Interrupted
from bench.loadclient import LoadClient
from bench.measure import Sampler, WaitSampler
from bench.phases import PHASES, Runner
from bench.plan import PLANS, Plan
from bench.results_index import RUNS
from bench.stack import Stack


def machine() -> dict[str, Any]:
    import psutil

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {}
    for name in ("django", "djangorestframework", "celery", "gunicorn", "aiohttp", "psycopg"):
        with contextlib.suppress(Exception):
            out[name] = version(name)
    with contextlib.suppress(Exception):
        out["redis-server"] = redis.Redis.from_url(stack.REDIS_URL).info("server")["redis_version"]
    with contextlib.suppress(Exception):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            out["postgresql"] = cursor.fetchone()[0]
    return out


# A platform's pool: about as many connections as the floors' closed loop holds, fewer than
# the open loop's requests in flight (docs/performance.md, "Keep-alive").
KEEPALIVE_DEFAULT = 32
# The soak's sampler times the machine's speed every this many 1 Hz samples (bench/yardstick.py).
YARDSTICK_EVERY = 5

SAMPLE_FIELDS = ("t", "received", "reserved", "callbacks_pending", "queues", "accept_queue")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=sorted(PLANS), default="quick")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated phases to leave out while developing "
        "(floors,claims,intake,e2e,backlog,overload,invariants,scale); results are partial",
    )
    parser.add_argument(
        "--profile",
        default="",
        help="comma-separated phases to sample with py-spy (claims,intake,e2e,overload); "
        "py-spy costs CPU, so a profiled run's figures are not the benchmark's",
    )
    parser.add_argument(
        "--e2e-rate",
        type=float,
        default=None,
        help="run the end-to-end phase at this offered rate (orders/s) without searching: "
        "to compare two versions at the same load; with --skip e2e, the backlog phase "
        "offers 1.5x this rate",
    )
    parser.add_argument(
        "--keepalive",
        type=int,
        default=KEEPALIVE_DEFAULT,
        metavar="N",
        help="send claims, intake, end to end, backlog and scale over a pool of N kept-alive "
        "connections, as a chatbot platform's HTTP pool does (default %(default)s); the floors "
        "both ways; 0: a new connection per request everywhere, as runs before 2026-12-06. "
        "The overload phases always open a connection per request, the flood's worst case",
    )
    args = parser.parse_args(argv)
    if args.keepalive < 0:
        parser.error("--keepalive: a pool's size, 0 or more")
    if problem := skip_problem({s for s in args.skip.split(",") if s}, args.e2e_rate):
        parser.error(problem)
    return args


def skip_problem(skip: set[str], e2e_rate: float | None) -> str | None:
    """Why this set of skipped phases cannot run, or None: a phase that starts from another's
    result needs that phase, and is refused here rather than failing halfway through a run."""
    unknown = skip - set(PHASES)
    if unknown:
        return f"--skip: unknown phase(s) {', '.join(sorted(unknown))}; phases: {', '.join(PHASES)}"
    if "intake" in skip and "e2e" not in skip and e2e_rate is None:
        return "--skip intake: the end-to-end search starts from intake's capacity; give --e2e-rate"
    if "intake" in skip and "overload" not in skip:
        return "--skip intake: overload offers 2x and 5x intake's saturation; skip overload too"
    if "e2e" in skip and "backlog" not in skip and e2e_rate is None:
        return "--skip e2e: backlog offers 1.5x the end-to-end rate; give --e2e-rate or skip it"
    return None


@dataclass
class Session:
    """What one run started, so that `finally` can stop exactly that."""

    stack: Stack
    sampler: Sampler | None = None
    waits: WaitSampler | None = None
    load: LoadClient | None = None
    autovacuum_turned_on: bool = False

    def close(self) -> None:
        try:
            if self.sampler is not None:
                self.sampler.stop()
            if self.waits is not None:
                self.waits.stop()
            if self.load is not None:
                self.load.quit()
            self.stack.stop_all()
        finally:
            if self.autovacuum_turned_on:
                seed.autovacuum_restore()


def start(
    session: Session,
    plan: Plan,
    run_dir: Path,
    *,
    e2e_rate: float | None = None,
    keepalive: int = 0,
    profile: str = "",
    tables: tuple[str, ...] = (),
) -> Runner:
    """Database, fixtures, the stack, the load generator and the samplers: a Runner.
    `tables`: whose dead tuples and autovacuum runs the sampler follows (bench.measure)."""
    began = time.time()
    stack.ports_free()
    seed.prepare_database(session.stack.env)
    session.autovacuum_turned_on = seed.autovacuum_on()
    if session.autovacuum_turned_on:
        print("PostgreSQL's autovacuum was off: on for this run, as in production", flush=True)
    seed.reset()
    fixtures = seed.create_fixtures()
    stack.start_stack(
        session.stack,
        sandbox_latency_ms=plan.sandbox_latency_ms,
        sandbox_quota_rps=plan.sandbox_quota_rps,
    )
    print(f"stack up in {time.time() - began:.1f} s", flush=True)
    session.load = LoadClient(session.stack, api_key=fixtures.api_key, slug=seed.MAIN_SLUG)
    session.sampler = Sampler(
        stack=session.stack,
        database_url=stack.DATABASE_URL,
        tables=tables,
        yardstick_every=YARDSTICK_EVERY if tables else 0,  # the soak's control
    )
    session.sampler.start()
    session.waits = WaitSampler(database_url=stack.DATABASE_URL)
    session.waits.start()
    runner = Runner(
        plan=plan,
        stk=session.stack,
        load=session.load,
        sampler=session.sampler,
        fixtures=fixtures,
    )
    runner.waits = session.waits
    runner.e2e_rate = e2e_rate
    runner.keepalive = keepalive
    if profile:
        runner.profile_phases = {p for p in profile.split(",") if p}
        runner.profile_dir = run_dir / "profile"
    return runner


def command(module: str = "bench.run") -> str:
    """How this run was started, with any port it was told to move (BENCH_*_PORT)."""
    moved = [f"{k}={os.environ[k]}" for k in stack.PORT_VARIABLES if k in os.environ]
    base = os.environ.get("BENCH_COMMAND") or " ".join([f"python -m {module}", *sys.argv[1:]])
    return " ".join([*moved, base])


def connections_text(keepalive: int) -> str:
    """How the load generator connected, for the report (bench.harness.Harness.spec)."""
    if not keepalive:
        return "a new connection per request, every phase"
    return (
        f"a pool of {keepalive} kept-alive connections for the floors, claims, intake, end to "
        "end, backlog and scale; a new connection per request for the overload phases and the "
        "floors marked per_connection"
    )


def collect(
    runner: Runner, plan: Plan, *, began: float, skip: set[str], load_at_start: tuple
) -> dict[str, Any]:
    """Everything the report needs, in one JSON-able dict."""
    sampler, env = runner.sampler, runner.stack.env
    return {
        "mode": plan.mode,
        "command": command(),
        "started_at": datetime.fromtimestamp(began, UTC).isoformat(),
        "wall_seconds": time.time() - began,
        "skipped": sorted(skip),
        "keepalive": runner.keepalive,
        "connections": connections_text(runner.keepalive),
        "plan": asdict(plan),
        "machine": machine(),
        "versions": versions(),
        "stack": {
            "gunicorn": f"{stack.GUNICORN_WORKERS} processes of "
            f"{os.environ.get('BENCH_WORKER_CLASS', 'infra.server.ApiWorker')}, "
            f"{os.environ.get('WEB_THREADS', '2')} threads each, on {stack.WEB_URL} "
            "(config/gunicorn.conf.py)",
            "celery": "one worker per queue (-c 1, prefetch 1): "
            + ", ".join((*stack.PRODUCT_QUEUES, stack.FLOOR_QUEUE)),
            "beat": "one",
            "sandbox": f"latency {plan.sandbox_latency_ms} ms, quota "
            f"{plan.sandbox_quota_rps} requests/s",
            "env": {k: env[k] for k in stack.REPORTED_ENV if k in env},
        },
        **runner.results,
        "marks": runner.marks,
        "timeseries": runner.load.call("timeseries", since=began),
        "samples": [
            {
                **{k: r.get(k) for k in SAMPLE_FIELDS},
                # CPU seconds the machine spent outside this benchmark so far (cumulative).
                "others_cpu": r["machine_busy"] - sum(r["cpu"].values()),
            }
            for r in sampler.rows
        ],
        "peak_rss": sampler.peaks(),
        "machine_load": {
            "loadavg_at_start": load_at_start,
            **sampler.machine_between(began, time.time()),
        },
        "loadgen": runner.load.call("cpu"),
    }


def _interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def interrupt_on_signals() -> None:
    """SIGTERM and SIGINT raise Interrupted, so that a run's `finally` stops its stack."""
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = PLANS[args.mode]
    skip = {s for s in args.skip.split(",") if s}
    began = time.time()
    commit = results_index.commit()  # before the run, whose index line changes the tree
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = RUNS / f"{plan.mode}-{stamp}"
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = stack.stack_env(sandbox_quota_rps=plan.sandbox_quota_rps)
    os.environ.update(env)  # this process's own Django uses the stack's settings

    interrupt_on_signals()
    load_at_start = os.getloadavg()
    print(
        f"campaign-burst benchmark, {plan.mode} mode; logs in {logs}; load average "
        f"{load_at_start[0]:.1f} at start",
        flush=True,
    )
    session = Session(stack=Stack(logs=logs, env=env))
    try:
        runner = start(
            session,
            plan,
            run_dir,
            e2e_rate=args.e2e_rate,
            keepalive=args.keepalive,
            profile=args.profile,
        )
        runner.run_all(skip)
        results = collect(runner, plan, began=began, skip=skip, load_at_start=load_at_start)
    except Interrupted as exc:
        print(f"interrupted ({exc}); stopping the stack", flush=True)
        return 130
    except stack.PortBusyError as exc:
        print(f"cannot start: {exc}", flush=True)
        return 2
    finally:
        session.close()
    results["wall_seconds"] = time.time() - began
    results["autovacuum"] = (
        "on for this run (the server's own setting is off)"
        if session.autovacuum_turned_on
        else "on (the server's own setting)"
    )
    results["commit"] = commit
    paths = report.write(results, run_dir, stamp)
    # Only the benchmark itself is the latest full run: not a part of it, a profiled one or a
    # comparison at a fixed rate.
    plain = plan.mode == "full" and not (skip or args.profile or args.e2e_rate is not None)
    kept = results_index.keep_latest_full(paths) if plain else []
    results_index.append_written(paths[0], kept=bool(kept))
    print(report.render(results))
    print()
    print(results_index.recorded(run_dir, kept=kept))
    print(f"wall time: {results['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
