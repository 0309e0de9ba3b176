"""The cluster as the phases see it: a Stack whose liveness is the cluster's, and a Sampler
whose process kinds are the cluster's processes. Imported only once bench/cluster/cli.py has
pointed bench/stack.py at the cluster's addresses.

Kinds are the process's name without its place (devtools/cluster.py names them
`h2-gunicorn`, `db-pgbouncer`, `lb-haproxy`), so a kind adds up every host's processes of
it: gunicorn, worker-<queue>, beat, haproxy, pgbouncer, postgres (the cluster's own server,
every backend and background process), redis (state), broker, sandbox, and the harness's
loadgen and orchestrator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import psutil

from bench import stack
from bench.measure import Sampler
from bench.stack import Stack

# The product: what "CPU per paid order" adds up (the harness is the load generator, the
# sandbox gateway and the orchestrator).
PRODUCT_KINDS = (
    "haproxy",
    "gunicorn",
    "pgbouncer",
    "postgres",
    "redis",
    "broker",
    "beat",
    "worker-reservations",
    "worker-payments",
    "worker-callbacks",
    "worker-maintenance",
)
ADDED_KINDS = ("haproxy", "pgbouncer")
APP_SETTINGS = (
    "DJANGO_SETTINGS_MODULE",
    "DEBUG",
    "SECRET_KEY",
    "CALLBACK_ALLOW_HTTP",
    "CALLBACK_ALLOW_PRIVATE",
    "CALLBACK_RPS",
    "CALLBACK_BURST",
    "GATEWAY_RPS",
    "BACKLOG_CEILING",
)  # what a cluster adds in front of and behind the hosts


def app_env(*, sandbox_quota_rps: int) -> dict[str, str]:
    """What the hosts run beyond the cluster's own addresses: the single-host benchmark's
    settings (bench/stack.py `stack_env`: bench.settings, DEBUG off, the callback and gateway
    limits), and any Host header (the Python door is reached at a host's own address)."""
    ours = stack.stack_env(sandbox_quota_rps=sandbox_quota_rps)
    return {**{k: ours[k] for k in APP_SETTINGS}, "ALLOWED_HOSTS": "*"}


def kind_of(name: str) -> str:
    """`h2-worker-payments` -> `worker-payments`; `lb-haproxy` -> `haproxy`."""
    place, _, rest = name.partition("-")
    if rest and (place in ("db", "lb") or (place[:1] == "h" and place[1:].isdigit())):
        return rest
    return name


@dataclass
class ClusterStack(Stack):
    """The harness's processes (the load generator) in `procs`; the cluster's own are
    checked here and stopped by the cluster."""

    cluster: Any = None

    def check_alive(self) -> None:
        super().check_alive()
        for name, proc in self.cluster.procs.items():
            if proc.poll() is not None:
                tail = (self.cluster.logs / f"{name}.log").read_text(errors="replace")
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail[-3000:]}")

    def restart_gunicorn(self) -> None:
        """Nothing to drop: HAProxy's queue timeout refuses what waits too long in it, and a
        host takes at most its maxconn (deploy/haproxy.cfg) past it."""


@dataclass
class ClusterSampler(Sampler):
    cluster: Any = None

    def _kinds(self) -> dict[str, list[psutil.Process]]:
        kinds: dict[str, list[psutil.Process]] = {}
        for name, popen in [*self.cluster.procs.items(), *self.stack.procs.items()]:
            kinds.setdefault(kind_of(name), []).extend(self._tree(popen.pid))
        kinds["orchestrator"] = [self._proc(os.getpid())]
        return kinds
