"""The stack's processes, defined once: `make run` (devtools/stack.py), the benchmark
(bench/stack.py), the chaos suite (bench/chaos/supervisor.py) and the tests (tests/stack.py)
all start them from here, the way production lays them out on one machine (docs/configuration.md,
"Queues and workers"):

    sandbox            the sandbox payment gateway (only when no gateway is configured)
    gunicorn           config/gunicorn.conf.py: our threaded ApiWorker
    beat               Celery beat: the sweeps, under a Redis lock (infra/beat.py), so
                       that every host may run one
    worker-<queue>     one Celery worker per queue, one process, prefetch 1, so that a slow
                       gateway never starves reservations
    flower             optional: Celery's monitor

What differs between the users (ports, log levels, a node name prefix, the benchmark's extra
queue) is a field of `Layout`; the flags every one of them runs with are written here only.
Each `Process` carries its own environment on top of the stack's, so a user can start, stop
or kill one by name and read its CPU from its process tree.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
GUNICORN_CONF = ROOT / "config" / "gunicorn.conf.py"
QUEUES = ("reservations", "payments", "callbacks", "maintenance")
CELERY = (PY, "-m", "celery", "-A", "config")


@dataclass(frozen=True)
class Process:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Sandbox:
    """The sandbox gateway's options; None leaves the sandbox's own default."""

    port: int
    latency_ms: int = 20
    host: str | None = None
    quota_rps: int | None = None
    key: str | None = None


@dataclass(frozen=True)
class Layout:
    """One way of running the stack: what its user sets, everything else is fixed."""

    web_bind: str  # host:port of gunicorn
    sandbox: Sandbox | None  # None: a configured gateway is used, no sandbox is started
    web_args: tuple[str, ...] = ()  # e.g. -w/-k for the benchmark, an access log for make run
    queues: tuple[str, ...] = QUEUES
    node_prefix: str = ""  # Celery node names: "<prefix><queue>@%h"
    worker_loglevel: str = "INFO"
    beat_loglevel: str | None = None
    flower_bind: tuple[str, int] | None = None  # (address, port) to start Flower
    metrics_dir: Path | None = None  # PROMETHEUS_MULTIPROC_DIR/<name> per process group
    worker_metrics_base_port: int = 9101  # worker i serves its pool's metrics on base + i
    beat: bool = True  # False: no beat in this layout (a cluster runs one, devtools/cluster.py)


def sandbox_argv(sandbox: Sandbox) -> tuple[str, ...]:
    argv = [PY, "-m", "sandbox_gateway"]
    if sandbox.host is not None:
        argv += ["--host", sandbox.host]
    argv += ["--port", str(sandbox.port), "--latency-ms", str(sandbox.latency_ms)]
    if sandbox.quota_rps is not None:
        argv += ["--quota-rps", str(sandbox.quota_rps)]
    if sandbox.key is not None:
        argv += ["--key", sandbox.key]
    return tuple(argv)


def gunicorn_argv(bind: str, *extra: str) -> tuple[str, ...]:
    return (PY, "-m", "gunicorn", "config.wsgi", "-c", str(GUNICORN_CONF), "-b", bind, *extra)


def worker_argv(
    queues: str,
    *,
    node: str,
    loglevel: str = "INFO",
    concurrency: int = 1,
    extra: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """A Celery worker node consuming `queues` (comma-separated), prefetch 1."""
    return (
        *CELERY,
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "-n",
        f"{node}@%h",
        "--prefetch-multiplier=1",
        "--without-gossip",
        "--without-mingle",
        *extra,
        # Celery sets the root logger's level from here (default WARNING): INFO keeps the
        # batch lines that name each order's request id (docs/operations-metrics.md).
        f"--loglevel={loglevel}",
    )


def flower_argv(address: str, port: int, *extra: str) -> tuple[str, ...]:
    return (*CELERY, "flower", f"--address={address}", f"--port={port}", *extra)


def table(layout: Layout) -> dict[str, Process]:
    """Name → process of the whole stack, in start order."""
    # No schedule file: RedBeat keeps the schedule, and when each entry last ran, in Redis.
    beat = [*CELERY, "beat"]
    if layout.beat_loglevel is not None:
        beat.append(f"--loglevel={layout.beat_loglevel}")
    argvs: dict[str, tuple[str, ...]] = {}
    if layout.sandbox is not None:
        argvs["sandbox"] = sandbox_argv(layout.sandbox)
    argvs["gunicorn"] = gunicorn_argv(layout.web_bind, *layout.web_args)
    if layout.beat:
        argvs["beat"] = tuple(beat)
    for queue in layout.queues:
        argvs[f"worker-{queue}"] = worker_argv(
            queue, node=f"{layout.node_prefix}{queue}", loglevel=layout.worker_loglevel
        )
    if layout.flower_bind is not None:
        argvs["flower"] = flower_argv(*layout.flower_bind, "--purge_offline_workers=60")
    procs: dict[str, Process] = {}
    workers = 0
    for name, argv in argvs.items():
        env: dict[str, str] = {}
        if name == "flower":  # its Broker page knows kombu's transports by name only
            env["CELERY_BROKER_TRANSPORT"] = "redis"
        if layout.metrics_dir is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(layout.metrics_dir / name)
            if name.startswith("worker-"):
                env["WORKER_METRICS_PORT"] = str(layout.worker_metrics_base_port + workers)
                workers += 1
        procs[name] = Process(name, argv, MappingProxyType(env))
    return procs
