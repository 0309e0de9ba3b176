"""The chaos stack's processes and the supervisor that keeps them running.

The stack is started from its process table (devtools/processes.py), as production runs it
on one machine: the sandbox gateway, gunicorn with config/gunicorn.conf.py, one Celery worker
per queue with prefetch 1, and beat. In production systemd (or Kubernetes) starts a process
again when it dies; here a thread does, every 0.3 s, and counts how often. Every process has its own
process group, so stopping one also stops its children; a worker whose parent a fault
killed leaves its pool process behind in the old group, which is killed before the worker
starts again (as systemd does with a unit's control group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections import Counter
from functools import partial
from pathlib import Path

from bench.stack import Stack, http_ok, wait_until
from devtools.processes import Layout, Sandbox, table


def layout(*, web_port: int, sandbox_port: int, sandbox_key: str, run_dir: Path) -> Layout:
    """The chaos suite's way of running the stack (devtools/processes.py has the processes):
    gunicorn gives its workers 10 s to finish on a restart; workers log at INFO, whose
    lines the suite reads (" ready.", redeliveries)."""
    return Layout(
        web_bind=f"127.0.0.1:{web_port}",
        web_args=("--graceful-timeout", "10"),
        beat_loglevel="WARNING",
        sandbox=Sandbox(port=sandbox_port, latency_ms=20, key=sandbox_key),
        node_prefix="chaos-",
        worker_loglevel="INFO",
    )


class Supervisor:
    def __init__(self, *, logs: Path, env: dict[str, str], layout: Layout) -> None:
        self.stack = Stack(logs=logs, env=env)
        self.wanted = table(layout)
        self.restarts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_all(self, *, web_url: str, sandbox_url: str, sandbox_key: str) -> None:
        for name, process in self.wanted.items():
            offset = self._log_size(name)
            self.stack.start(process)
            if name.startswith("worker-"):
                wait_until(partial(self._logged_ready, name, offset), self.stack, name)
        auth = {"Authorization": f"Bearer {sandbox_key}"}
        wait_until(http_ok(f"{sandbox_url}/_sandbox/config", auth), self.stack, "sandbox")
        wait_until(http_ok(f"{web_url}/bench/floor/get/"), self.stack, "gunicorn")
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def process(self, name: str) -> subprocess.Popen[bytes] | None:
        """The live process of that name, or None while it is down."""
        with self._lock:
            proc = self.stack.procs.get(name)
        return proc if proc is not None and proc.poll() is None else None

    def all_up(self) -> bool:
        return all(self.process(name) is not None for name in self.wanted)

    def stop_all(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self.stack.stop_all()

    def _watch(self) -> None:
        while not self._stop.wait(0.3):
            for name, process in self.wanted.items():
                with self._lock:
                    proc = self.stack.procs.get(name)
                    if proc is not None and proc.poll() is None:
                        continue
                    if proc is not None:
                        # Its children (a gunicorn or Celery pool) go with it.
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(proc.pid, signal.SIGKILL)
                    self.restarts[name] += 1
                    self.stack.start(process)

    def _log_size(self, name: str) -> int:
        path = self.stack.logs / f"{name}.log"
        return path.stat().st_size if path.exists() else 0

    def _logged_ready(self, name: str, offset: int) -> bool:
        """A Celery worker logs " ready." once it consumes; only lines after `offset` count."""
        with (self.stack.logs / f"{name}.log").open("rb") as log:
            log.seek(offset)
            return b" ready." in log.read()
