"""Stopping cleanly (docs/operations.md, "Stopping and restarting").

Our gunicorn worker (config/server.py) does nothing with a quit that arrives while it is
already stopping, instead of re-entering its executor's shutdown and hanging.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests import stack

# The worker, stopped twice at once. The first quit's `ThreadPoolExecutor.shutdown` raises the
# second quit while it holds its lock (the interleaving seen with py-spy, forced here): the
# handler runs at once, in the middle of the first shutdown.
DOUBLE_QUIT = textwrap.dedent(
    """
    import os, signal, threading
    from gunicorn.config import Config
    from gunicorn.glogging import Logger
    from config.server import ApiWorker

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
