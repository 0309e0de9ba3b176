"""Starting real parts of the stack as processes, for the tests: the sandbox gateway,
Celery workers, gunicorn, Flower, with the command lines of the stack's process table
(devtools/processes.py). Used by conftest fixtures; nothing here is a fake."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from devtools import processes
from devtools.processes import Sandbox
from tests import waiting

PROJECT_ROOT = processes.ROOT
SANDBOX_KEY = "test-sandbox-key"
SANDBOX_AUTH = {"Authorization": f"Bearer {SANDBOX_KEY}"}
START_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe_client() -> httpx.Client:
    """One client for all of a start's readiness checks: `httpx.get` builds a client, and
    with it a TLS context (26 ms of CPU), for every check, ten a second, taken from the
    process that is starting on a 2-core machine. Its connections close with the block."""
    return httpx.Client()


def spawn(
    command: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a process in its own process group (so a test can kill it and its children)."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


def wait_until(
    ready: Callable[[], bool], process: subprocess.Popen[bytes], log_path: Path, what: str
) -> None:
    """Until `ready()`; fails with the end of the process's log if it exits first or is not
    ready within START_TIMEOUT_SECONDS."""

    def ready_while_running() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {process.returncode}:\n{log_path.read_text()[-4000:]}"
            )
        return ready()

    try:
        waiting.wait_until(
            ready_while_running, what=what, timeout=START_TIMEOUT_SECONDS, interval=0.1
        )
    except AssertionError as exc:
        raise RuntimeError(f"{exc}:\n{log_path.read_text()[-4000:]}") from None


def stop(
    process: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 15
) -> int:
    """Signal the whole process group and wait; SIGKILL if it does not go. The exit code."""
    if process.poll() is not None:
        return process.returncode
    try:
        os.killpg(process.pid, sig)
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()
    except ProcessLookupError:
        return process.wait()


def start_sandbox(
    port: int, log_path: Path, *, latency_ms: int = 0, key: str = SANDBOX_KEY
) -> subprocess.Popen[bytes]:
    url = f"http://127.0.0.1:{port}"
    # Another run's sandbox on this port would answer the readiness check below, and stop
    # under this run when that one ends: refuse it at once.
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} already serves something: not this run's sandbox")
    command = processes.sandbox_argv(Sandbox(port=port, latency_ms=latency_ms, key=key))
    process = spawn(list(command), log_path)
    auth = {"Authorization": f"Bearer {key}"}

    with probe_client() as probe:

        def ready() -> bool:
            try:
                return (
                    probe.get(f"{url}/_sandbox/config", headers=auth, timeout=0.5).status_code
                    == 200
                )
            except httpx.TransportError:
                return False

        wait_until(ready, process, log_path, "sandbox gateway")
    return process


def start_worker(
    log_path: Path,
    *,
    queues: str,
    env: dict[str, str],
    concurrency: int = 2,
    node: str = "",
) -> subprocess.Popen[bytes]:
    """A real `celery -A config worker`, prefork, consuming `queues`; ready once it logs so.
    `node` names it apart from other workers on the same queues (default: by its queues)."""
    command = processes.worker_argv(
        queues,
        node=node or f"test-{queues}",
        concurrency=concurrency,
        extra=("--without-heartbeat",),
    )
    start = log_path.stat().st_size if log_path.exists() else 0
    # Workers wait for row locks as production's do (config/wsgi.py sets only the web's
    # limit), whatever a test that imported config.wsgi put into this process's environment.
    process = spawn(list(command), log_path, {"DB_LOCK_TIMEOUT_MS": "0", **env})

    def ready() -> bool:
        with log_path.open("rb") as log:
            log.seek(start)
            return b" ready." in log.read()

    wait_until(ready, process, log_path, "celery worker")
    return process


def start_web(
    log_path: Path, *, env: dict[str, str], workers: int = 1
) -> tuple[str, subprocess.Popen[bytes]]:
    """A real gunicorn serving the project as production does (config/gunicorn.conf.py), on a
    free port; ready once it answers. Returns its base URL and the process."""
    port = free_port()
    command = processes.gunicorn_argv(f"127.0.0.1:{port}", "-w", str(workers))
    process = spawn(list(command), log_path, env)
    url = f"http://127.0.0.1:{port}"

    with probe_client() as probe:

        def ready() -> bool:
            try:
                probe.get(f"{url}/api/v1/campaigns/", timeout=1)  # any answer will do
            except httpx.HTTPError:
                return False
            return True

        wait_until(ready, process, log_path, "gunicorn")
    return url, process


def start_flower(port: int, log_path: Path, *, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`celery -A config flower` as an operator starts it; ready once its page answers."""
    process = spawn(list(processes.flower_argv("127.0.0.1", port)), log_path, env)

    with probe_client() as probe:

        def ready() -> bool:
            try:
                return probe.get(f"http://127.0.0.1:{port}/healthcheck", timeout=0.5).is_success
            except httpx.TransportError:
                return False

        wait_until(ready, process, log_path, "flower")
    return process
