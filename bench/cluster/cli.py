"""`python -m bench.cluster`'s arguments, and the cluster's addresses set as the BENCH_*
variables before any module that reads bench/stack.py is imported."""

from __future__ import annotations

import argparse
import os

from devtools.cluster import DATABASE, Cluster

CALLBACK_OFFSET = 60  # the load generator's receiver: the cluster's port + this


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster")
    parser.add_argument("--mode", choices=("quick", "full"), default="quick")
    parser.add_argument(
        "--hosts",
        default="1,3",
        help="comma-separated host counts, run in turn on the same cores (default 1,3); the "
        "first also takes the overload straight at its gunicorn, and sets the end-to-end "
        "rate of the others",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("BENCH_CLUSTER_PORT", "8190")),
        help="HAProxy's port (the cluster's other ports and its subnet follow from it)",
    )
    args = parser.parse_args(argv)
    try:
        args.host_counts = [int(n) for n in args.hosts.split(",") if n]
    except ValueError:
        parser.error("--hosts: comma-separated whole numbers, e.g. 1,3")
    if not args.host_counts or min(args.host_counts) < 1:
        parser.error("--hosts: at least one count, each 1 or more")
    return args


def addresses(cluster: Cluster) -> dict[str, str]:
    """The BENCH_* variables that point bench/stack.py at `cluster` (not yet started: its
    addresses follow from its port alone). The orchestrator reaches PostgreSQL directly,
    the hosts through PgBouncer; the callback receiver listens where the hosts reach the
    root namespace (the bridge's address), or on loopback without namespaces."""
    db = cluster.net.address("db")
    p = cluster.ports("db")
    callback_host = f"{cluster.net.prefix}.1" if cluster.net.namespaces else "127.0.0.1"
    return {
        "BENCH_DATABASE_URL": f"postgres://postgres@{db}:{p.postgres}/{DATABASE}",
        "BENCH_REDIS_URL": f"redis://{db}:{p.redis}/0",
        "BENCH_BROKER_URL": f"redis://{db}:{p.broker}/0",
        "BENCH_SANDBOX_URL": f"http://{db}:{p.sandbox}",
        "BENCH_WEB_PORT": str(cluster.port),
        "BENCH_CALLBACK_PORT": str(cluster.port + CALLBACK_OFFSET),
        "BENCH_CALLBACK_HOST": callback_host,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.update(addresses(Cluster(hosts=1, port=args.port)))
    from bench.cluster import run

    return run.main(args)
