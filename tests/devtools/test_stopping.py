"""Stopping cleanly (docs/operations.md, "Stopping and restarting").

`make run`'s runner (devtools/stack.py), stopped as a terminal's Ctrl-C stops it (SIGINT to
its process group), leaves no process of the stack behind and frees the web port, every time;
and our gunicorn worker (infra/server.py) does nothing with a quit that arrives while it is
already stopping, instead of re-entering its executor's shutdown and hanging.

The stack is started and stopped STACK_STOP_REPEATS times (3 in the everyday suite, about
12 s each on a 2-core machine; the issue's ten-fold run: STACK_STOP_REPEATS=10).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
import redis
from django.conf import settings

from tests import stack

REPEATS = int(os.environ.get("STACK_STOP_REPEATS", "3"))
BANNER = b"The stack is up"
QUEUE_WORKERS = 4  # devtools.processes.QUEUES: four worker nodes, each on its metrics port


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (the workers' metrics ports are base + i)."""
    while True:
        base = stack.free_port()
        if base + count > 65535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base


def port_free(port: int) -> bool:
    """Nothing listens on the port: the next `make run` can bind it (as gunicorn does, with
    SO_REUSEADDR, so the closed connections of the readiness checks do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def groups_members(groups: set[int]) -> list[str]:
    """Every process, exited or not, still in one of the process groups."""
    found = []
    for proc in psutil.process_iter(["pid", "status", "cmdline"]):
        try:
            if os.getpgid(proc.pid) in groups:
                found.append(f"{proc.pid} {proc.info['status']} {proc.info['cmdline']}")
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return found


@pytest.mark.pipeline
@pytest.mark.django_db(transaction=True)  # the runner seeds the demo; flushed afterwards
def test_ctrl_c_stops_the_whole_stack_every_time(
    worker_env: dict[str, str], log_dir: Path, tmp_path: Path
) -> None:
    # given: make run's own runner, on ports and a run directory of this test's, with the
    # test session's gateway (so it starts no sandbox)
    port = stack.free_port()
    env = {
        **worker_env,
        "STACK_PORT": str(port),
        "WORKER_METRICS_BASE_PORT": str(free_ports(QUEUE_WORKERS)),
        "STACK_RUN_DIR": str(tmp_path / "run"),
        "PAYMENT_GATEWAY_URL": settings.PAYMENT_GATEWAY_URL,
    }
    log_path = log_dir / "stack-stop.log"
    log_path.unlink(missing_ok=True)
    groups: set[int] = set()  # of the attempt under way: killed if it fails
    try:
        for attempt in range(REPEATS):
            # when: the stack is up, and the terminal's Ctrl-C reaches the runner's group
            start = log_path.stat().st_size if log_path.exists() else 0
            runner = stack.spawn([sys.executable, "-m", "devtools.stack"], log_path, env)

            def up(runner_log: Path = log_path, offset: int = start) -> bool:
                with runner_log.open("rb") as log:
                    log.seek(offset)
                    return BANNER in log.read()

            stack.wait_until(up, runner, log_path, "make run's stack")
            children = psutil.Process(runner.pid).children()
            groups = {runner.pid} | {os.getpgid(child.pid) for child in children}
            # each process leads its own group: the terminal's Ctrl-C reaches the runner alone,
            # and the runner's one SIGTERM is the only stop a process gets
            assert [os.getpgid(child.pid) for child in children] == [c.pid for c in children]
            os.killpg(runner.pid, signal.SIGINT)

            # then: the runner returns only once every process of the stack is gone
            try:
                code = runner.wait(timeout=60)
            except subprocess.TimeoutExpired:
                stack.stop(runner, sig=signal.SIGKILL)
                raise
            assert code == 0, (attempt, log_path.read_text()[-4000:])
            assert groups_members(groups) == [], attempt
            assert port_free(port), attempt
            groups = set()
    finally:
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        # beat's sweeps, sent while the stack was up, are no later test's business
        redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


# The worker, stopped twice at once. The first quit's `ThreadPoolExecutor.shutdown` raises the
# second quit while it holds its lock (the interleaving seen with py-spy, forced here): the
# handler runs at once, in the middle of the first shutdown.
DOUBLE_QUIT = textwrap.dedent(
    """
    import os, signal, threading
    from gunicorn.config import Config
    from gunicorn.glogging import Logger
    from infra.server import ApiWorker

    cfg = Config()
    worker = ApiWorker(0, os.getppid(), [], None, 30, cfg, Logger(cfg))
    worker.PIPE = list(os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC))
    worker.tpool = worker.get_thread_pool()
    worker.init_signals()
    shutdowns = []

    class SecondQuitInside:
        def __init__(self, lock):
            self.lock = lock
        def __enter__(self):
            shutdowns.append(1)
            self.lock.acquire()
            if len(shutdowns) == 1:
                signal.raise_signal(signal.SIGQUIT)
            return self
        def __exit__(self, *exc):
            self.lock.release()

    worker.tpool._shutdown_lock = SecondQuitInside(threading.Lock())
    try:
        signal.raise_signal(signal.SIGINT)
    finally:
        print("shutdowns:", len(shutdowns), flush=True)
    """
)


def test_a_second_quit_during_the_workers_stop_is_ignored(tmp_path: Path) -> None:
    # given: an ApiWorker with gunicorn's signal handlers, as in a served process
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    # when: SIGINT, and SIGQUIT inside the stop it starts
    try:
        done = subprocess.run(
            [sys.executable, "-c", DOUBLE_QUIT],
            check=False,
            cwd=stack.PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the worker hung in its second stop: {hung.stdout!r}")
    # then: the first stop ends the process (gunicorn's exit 0), the second never started
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "shutdowns: 1", done.stdout
