"""One invocation of the cluster benchmark (bench/cluster/__init__.py): each host count's
cluster in turn, the phases of bench/phases.py through its HAProxy, the Python door on the
first, then the report."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from datetime import UTC, datetime
from typing import Any

from bench import results_index, seed, stack
from bench.cluster import report
from bench.cluster.place import ClusterSampler, ClusterStack, app_env
from bench.cluster.plan import PLANS, RUNS
from bench.harness import Interrupted, print_steps
from bench.loadclient import LoadClient
from bench.measure import WaitSampler
from bench.phases import PHASES, Runner
from bench.plan import Plan
from bench.results_index import RUNS as RUN_DIRS
from bench.run import interrupt_on_signals, machine, versions
from devtools.cluster import Cluster

SERVER_FIELDS = ("stot", "hrsp_2xx", "hrsp_4xx", "hrsp_5xx", "qmax", "qtime", "ttime")


def python_door(runner: Runner, base_url: str) -> list[dict[str, Any]]:
    """The overload phase's 2 x and 5 x again, the same offered rates, straight at one host's
    gunicorn: what the Python door does with the excess without HAProxy's queue in front."""
    plan = runner.plan
    runs: list[dict[str, Any]] = []
    for over in runner.results["overload"]["runs"]:
        name = f"door-{over['factor']:g}x"
        steps = [{"rate": over["rate"], "duration": plan.overload_seconds}]
        runner.ensure_pool(runner.orders_needed(steps, "open"))
        with runner.phase(name, plan.overload_seconds) as info:
            spec = runner.spec(name, "orders", "open", steps)
            summary = runner.load.run({**spec, "base_url": base_url})
        print_steps(summary)
        with runner.phase(f"drain-{name}"):
            drained = runner.drain(name, plan.wait_overload)
        step = summary["steps"][0]
        sat = over["saturation"]
        runs.append(
            {
                "factor": over["factor"],
                "rate": over["rate"],
                "saturation": sat,
                "goodput_vs_saturation": step["accepted_per_s"] / sat if sat else None,
                "summary": summary,
                "drain": drained,
                "cpu_s": info["cpu_s"],
            }
        )
    return runs


def servers(cluster: Cluster) -> dict[str, dict[str, int]]:
    """HAProxy's counters for each host: how its requests were spread."""
    with contextlib.suppress(OSError, KeyError, ValueError):
        return {
            name: {k: int(row.get(k) or 0) for k in SERVER_FIELDS}
            for name, row in cluster.stats().items()
        }
    return {}


def run_cluster(
    plan: Plan, hosts: int, *, port: int, run_dir: Any, e2e_rate: float | None, door: bool
) -> dict[str, Any]:
    """Start a cluster of `hosts`, seed it, run the phases, stop it: what they measured."""
    from django.db import connections

    began = time.time()
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(
        hosts=hosts,
        port=port,
        run_dir=run_dir / "cluster",
        env=app_env(sandbox_quota_rps=plan.sandbox_quota_rps),
        sandbox_latency_ms=plan.sandbox_latency_ms,
    )
    cluster.sandbox_key = stack.SANDBOX_KEY  # the invariants' and the ledger's key
    stk = ClusterStack(logs=logs, env=dict(os.environ), cluster=cluster)
    sampler = waits = None
    load: LoadClient | None = None
    try:
        print(f"== {hosts} host(s): starting the cluster (logs in {cluster.logs})", flush=True)
        cluster.start()
        connections.close_all()  # a new server at the same address
        fixtures = seed.create_fixtures()
        server_versions = versions()
        print(f"  up and seeded in {time.time() - began:.0f} s", flush=True)
        load = LoadClient(stk, api_key=fixtures.api_key, slug=seed.MAIN_SLUG)
        sampler = ClusterSampler(stack=stk, database_url=stack.DATABASE_URL, cluster=cluster)
        sampler.start()
        waits = WaitSampler(database_url=stack.DATABASE_URL)
        waits.start()
        runner = Runner(plan=plan, stk=stk, load=load, sampler=sampler, fixtures=fixtures)
        runner.waits = waits
        runner.e2e_rate = e2e_rate
        runner.run_all(set(PHASES) - set(RUNS))
        spread = servers(cluster)
        door_runs = python_door(runner, cluster.web_url(cluster.hosts[0])) if door else []
        return report.config_results(
            hosts=hosts,
            results=runner.results,
            door=door_runs,
            servers=spread,
            seconds=time.time() - began,
            loopback=cluster.why_loopback,
            versions=server_versions,
        )
    finally:
        for closing in (sampler, waits):
            if closing is not None:
                closing.stop()
        if load is not None:
            load.quit()
        stk.stop_all()
        # PostgreSQL stops (SIGTERM: smart shutdown) only once its clients have gone.
        connections.close_all()
        cluster.stop()


def main(args: argparse.Namespace) -> int:
    import django

    plan = PLANS[args.mode]
    began = time.time()
    commit = results_index.commit()  # before the run, whose index line changes the tree
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = RUN_DIRS / f"{plan.mode}-{stamp}"
    os.environ.update(stack.stack_env(sandbox_quota_rps=plan.sandbox_quota_rps))
    django.setup()
    interrupt_on_signals()
    load_at_start = os.getloadavg()
    print(
        f"cluster benchmark, {args.mode} form, hosts {args.hosts}, HAProxy on "
        f"127.0.0.1:{args.port}; load average {load_at_start[0]:.1f} at start",
        flush=True,
    )
    configs: list[dict[str, Any]] = []
    e2e_rate: float | None = None
    try:
        for i, hosts in enumerate(args.host_counts):
            config = run_cluster(
                plan,
                hosts,
                port=args.port,
                run_dir=run_dir / f"{hosts}-hosts",
                e2e_rate=e2e_rate,
                door=i == 0,
            )
            configs.append(config)
            e2e_rate = e2e_rate or config["e2e"]["rate"]
    except Interrupted as exc:
        print(f"interrupted ({exc}); the cluster is stopped", flush=True)
        return 130
    results = report.results(
        mode=plan.mode,
        command=(os.environ.get("BENCH_COMMAND") or f"python -m bench.cluster --mode {args.mode}")
        + f" --hosts {args.hosts} --port {args.port}",
        started_at=datetime.fromtimestamp(began, UTC).isoformat(),
        wall_seconds=time.time() - began,
        plan=plan,
        configs=configs,
        machine={**machine(), "loadavg_at_start": load_at_start},
    )
    results["commit"] = commit
    path = report.write(results, run_dir, stamp)
    results_index.append_written(path)
    print(report.render(results))
    print()
    print(results_index.recorded(run_dir))
    print(f"wall time {results['wall_seconds']:.0f} s")
    return 0
