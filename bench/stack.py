"""The stack under test, started from the stack's process table (devtools/processes.py) the
way production runs it on one machine: gunicorn (2 processes of our threaded worker), one
Celery worker per queue with prefetch 1 (and one for the floor's queue), beat, and the
sandbox gateway; PostgreSQL and Redis are the machine's own.

Isolation from the dev stack and the test suite: database `campaign_bench`, Redis DB 8
(fast state) and 9 (broker), gunicorn on 127.0.0.1:8100, the sandbox on 127.0.0.1:8766.
Every process gets its own process group, so stopping it also stops its children (gunicorn
and Celery pool processes); `Stack.stop_all` runs on normal exit, on error and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from devtools import processes
from devtools.processes import QUEUES, ROOT, Layout, Process, Sandbox

# The cluster benchmark (bench/cluster/) points the same modules at a cluster's own servers
# with BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_BROKER_URL, BENCH_SANDBOX_URL and
# BENCH_CALLBACK_HOST (where its hosts reach the load generator's callback receiver).
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/campaign_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/9")
# Ports can be moved when something else holds them (BENCH_*_PORT); the report shows them.
WEB_HOST = "127.0.0.1"
WEB_PORT = int(os.environ.get("BENCH_WEB_PORT", "8100"))
SANDBOX_PORT = int(os.environ.get("BENCH_SANDBOX_PORT", "8766"))
CALLBACK_PORT = int(os.environ.get("BENCH_CALLBACK_PORT", "8101"))
CALLBACK_HOST = os.environ.get("BENCH_CALLBACK_HOST", "127.0.0.1")
PORT_VARIABLES = {
    "BENCH_WEB_PORT": WEB_PORT,
    "BENCH_SANDBOX_PORT": SANDBOX_PORT,
    "BENCH_CALLBACK_PORT": CALLBACK_PORT,
}
SANDBOX_KEY = "bench-sandbox-key"
SANDBOX_AUTH = {"Authorization": f"Bearer {SANDBOX_KEY}"}
WEB_URL = f"http://{WEB_HOST}:{WEB_PORT}"
SANDBOX_URL = os.environ.get("BENCH_SANDBOX_URL", f"http://127.0.0.1:{SANDBOX_PORT}")
GUNICORN_WORKERS = 2  # one per core (docs/operations.md): more processes than cores lost throughput
PRODUCT_QUEUES = QUEUES
FLOOR_QUEUE = "bench"
START_TIMEOUT = 60.0


def stack_env(*, sandbox_quota_rps: int) -> dict[str, str]:
    """The environment of every process of the stack (and of the orchestrator's Django).

    Beyond addresses, three deliberate settings, reported with the results:
    - CALLBACK_RPS: the chatbot's receiver here takes thousands a second; the default per-client
      callback limit (2,000/s, sized for the story's 833 orders/s peak) would cap the
      end-to-end rate near 1,000 orders/s by itself.
    - GATEWAY_RPS: the product's global gateway limit, set to the sandbox's stated quota.
    - BACKLOG_CEILING: raised above the scale probe's 1 M waiting orders, so the probe times
      intake rather than the ceiling's immediate 429.
    """
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": BROKER_URL,
        "PAYMENT_GATEWAY_URL": SANDBOX_URL,
        "PAYMENT_GATEWAY_KEY": SANDBOX_KEY,
        "CALLBACK_ALLOW_HTTP": "true",
        "CALLBACK_ALLOW_PRIVATE": "true",  # the chatbot's receiver is on this machine
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-not-secret",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CALLBACK_RPS": "5000",
        "CALLBACK_BURST": "1000",
        "GATEWAY_RPS": str(sandbox_quota_rps),
        "BACKLOG_CEILING": "5000000",
        "PYTHONUNBUFFERED": "1",
    }


REPORTED_ENV = (
    "DJANGO_SETTINGS_MODULE",
    "WEB_THREADS",
    "WEB_QUEUE_TIMEOUT_MS",
    "WEB_QUEUE_TIMEOUT_BUSY_MS",
    "WEB_QUEUE_TIMEOUT_SHEDDING_MS",
    "WEB_SHED_HEAVY_SHARE",
    "WEB_MAX_WAITING",
    "WEB_KEEPALIVE_REQUESTS",
    "INTAKE_CACHE_SECONDS",
    "CACHE_VERSION_CHECK_SECONDS",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "PAYMENT_GATEWAY_URL",
    "CALLBACK_ALLOW_HTTP",
    "CALLBACK_ALLOW_PRIVATE",
    "DEBUG",
    "CALLBACK_RPS",
    "CALLBACK_BURST",
    "GATEWAY_RPS",
    "BACKLOG_CEILING",
)


def layout(*, logs: Path, sandbox_latency_ms: int, sandbox_quota_rps: int) -> Layout:
    """The benchmark's way of running the stack (devtools/processes.py has the processes):
    two gunicorn processes of our worker (BENCH_WORKER_CLASS=sync compares gunicorn's sync
    worker with ours), the floor's extra queue, quiet logs."""
    return Layout(
        web_bind=f"{WEB_HOST}:{WEB_PORT}",
        web_args=(
            "-w",
            str(GUNICORN_WORKERS),
            "-k",
            os.environ.get("BENCH_WORKER_CLASS", "infra.server.ApiWorker"),
        ),
        beat_loglevel="WARNING",
        sandbox=Sandbox(
            host="127.0.0.1",
            port=SANDBOX_PORT,
            latency_ms=sandbox_latency_ms,
            quota_rps=sandbox_quota_rps,
            key=SANDBOX_KEY,
        ),
        queues=(*PRODUCT_QUEUES, FLOOR_QUEUE),
        node_prefix="bench-",
        worker_loglevel="WARNING",
    )


@dataclass
class Stack:
    """The processes this run started, by name. Only these are ever signalled."""

    logs: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: dict[str, Process] = field(default_factory=dict)

    def start(self, process: Process) -> subprocess.Popen[bytes]:
        """Start one process of the table, in its own process group, its log in `logs`."""
        self.started[process.name] = process
        with (self.logs / f"{process.name}.log").open("ab") as log:
            proc = subprocess.Popen(
                process.argv,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env, **process.env},
                start_new_session=True,
            )
        self.procs[process.name] = proc
        return proc

    def check_alive(self) -> None:
        """Raise if a process of the stack died (its log says why)."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self, name: str, *, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            _stop_group(proc, timeout=timeout, sig=sig)

    def restart_gunicorn(self) -> None:
        """Stop gunicorn at once (SIGQUIT: no graceful wait) and start it again; its listen
        socket closes, so connections queued in it are refused rather than served."""
        self.stop("gunicorn", sig=signal.SIGQUIT)
        self.start(self.started["gunicorn"])
        wait_until(http_ok(f"{WEB_URL}/bench/floor/get/"), self, "gunicorn")

    def stop_all(self) -> None:
        """SIGTERM every process group at once, then wait; SIGKILL what does not go."""
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the whole group, also when its leader is gone (children may remain)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop_group(
    proc: subprocess.Popen[bytes], *, timeout: float, sig: int = signal.SIGTERM
) -> None:
    _signal_group(proc, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def accept_queue(port: int = WEB_PORT) -> int | None:
    """Connections waiting in the accept queue of the socket listening on `port` (the
    rx_queue of a LISTEN entry in /proc/net/tcp): requests gunicorn has not picked up."""
    wanted = f":{port:04X}"
    found = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 4 and fields[1].endswith(wanted) and fields[3] == "0A":  # noqa: PLR2004
                found = (found or 0) + int(fields[4].split(":")[1], 16)
    return found


def wait_until(ready: Callable[[], bool], stack: Stack, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        stack.check_alive()
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready within {START_TIMEOUT:.0f} s (logs in {stack.logs})")


def http_ok(url: str, headers: dict[str, str] | None = None) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return httpx.get(url, headers=headers, timeout=1.0).status_code == 200  # noqa: PLR2004
        except httpx.HTTPError:
            return False

    return ready


def workers_ready(names: list[str]) -> Callable[[], bool]:
    """True once every named Celery worker answers a broadcast ping (remote control is on)."""
    from config.celery import app

    def ready() -> bool:
        replies = app.control.ping(destination=names, timeout=1.0) or []
        answered = {name for reply in replies for name in reply}
        return set(names) <= answered

    return ready


class PortBusyError(RuntimeError):
    """One of the benchmark's ports is held by another process."""


def ports_free() -> None:
    """Refuse to start when one of the benchmark's ports is taken, naming who holds it: a
    stale process would otherwise answer in place of the stack under test."""
    import socket

    for variable, port in PORT_VARIABLES.items():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                holder = _port_holder(port)
                raise PortBusyError(
                    f"port {port} is in use{holder}; stop that process or move the "
                    f"benchmark's port, e.g. {variable}={port + 10} make bench-quick"
                ) from None


def _port_holder(port: int) -> str:
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN" and conn.pid:
                proc = psutil.Process(conn.pid)
                return f" by pid {conn.pid} ({' '.join(proc.cmdline())[:120]})"
    except (psutil.Error, OSError):
        return ""
    return ""


def start_stack(stack: Stack, *, sandbox_latency_ms: int, sandbox_quota_rps: int) -> None:
    """Start every process and wait until each answers."""
    import socket

    host = socket.gethostname()
    for process in processes.table(
        layout(
            logs=stack.logs,
            sandbox_latency_ms=sandbox_latency_ms,
            sandbox_quota_rps=sandbox_quota_rps,
        )
    ).values():
        stack.start(process)
    wait_until(http_ok(f"{SANDBOX_URL}/_sandbox/config", SANDBOX_AUTH), stack, "sandbox gateway")
    wait_until(http_ok(f"{WEB_URL}/bench/floor/get/"), stack, "gunicorn")
    names = [f"bench-{q}@{host}" for q in (*PRODUCT_QUEUES, FLOOR_QUEUE)]
    wait_until(workers_ready(names), stack, "celery workers")
