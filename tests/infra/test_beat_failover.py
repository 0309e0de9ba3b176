"""Beat on two hosts: one sends the sweeps, and the other takes over when the first is lost.

Two real `celery beat` processes, with the process table's command line (devtools/processes.py)
and the scheduler the settings name (infra/beat.py, RedBeat), share the test broker. Each
sweep they send is a message in the maintenance queue whose `origin` header names the process
that published it, so the sweeps are counted per process. No worker consumes the queue during
the test, and the test removes its own messages afterwards.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings

from devtools.processes import Layout, table
from tests import stack
from tests.waiting import wait_until

LOCK_SECONDS = 5  # BEAT_LOCK_TIMEOUT_SECONDS: the waiting beat polls every fifth of it
POLL_SECONDS = LOCK_SECONDS / 5
SWEEP_SECONDS = 1  # PIPELINE_SWEEP_SECONDS
QUEUE = "maintenance"  # where CELERY_TASK_ROUTES sends orders.sweep


def sweeps(broker: redis.Redis) -> Counter[int]:
    """Publisher pid → orders.sweep messages waiting in the maintenance queue."""
    found: Counter[int] = Counter()
    for raw in broker.lrange(QUEUE, 0, -1):
        headers = json.loads(raw)["headers"]
        if headers["task"] == "orders.sweep":  # origin: "gen<pid>@<host>" (Celery's anon node)
            found[int(headers["origin"].split("@")[0].removeprefix("gen"))] += 1
    return found


def poll(done: Callable[[], bool], what: str, timeout: float) -> float:
    """Seconds until `done()`; fails after `timeout`."""
    start = time.monotonic()
    wait_until(done, what=what, timeout=timeout)
    return time.monotonic() - start


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    yield client
    for raw in client.lrange(QUEUE, 0, -1):  # this test's sweeps are no later test's business
        if json.loads(raw)["headers"]["task"] == "orders.sweep":
            client.lrem(QUEUE, 0, raw)


@pytest.fixture
def start_beat(
    tmp_path: Path, broker: redis.Redis
) -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    prefix = f"test-beat-{uuid.uuid4().hex[:8]}:"
    layout = Layout(web_bind="127.0.0.1:1", sandbox=None, beat_loglevel="INFO")
    argv = list(table(layout)["beat"].argv)
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "BEAT_KEY_PREFIX": prefix,
        "BEAT_LOCK_TIMEOUT_SECONDS": str(LOCK_SECONDS),
        "PIPELINE_SWEEP_SECONDS": str(SWEEP_SECONDS),
        "PYTHONUNBUFFERED": "1",
    }
    started = []

    def start(name: str) -> subprocess.Popen[bytes]:
        process = stack.spawn(argv, tmp_path / f"{name}.log", env)
        started.append(process)
        return process

    yield start
    for process in started:
        stack.stop(process, sig=signal.SIGKILL)
    for key in broker.scan_iter(f"{prefix}*"):
        broker.delete(key)


@pytest.mark.pipeline
def test_two_beats_send_each_sweep_once_and_the_second_takes_over_a_killed_first(
    broker: redis.Redis, start_beat: Callable[[str], subprocess.Popen[bytes]], tmp_path: Path
):
    # given one beat sending the sweeps
    first = start_beat("first")
    poll(lambda: sweeps(broker)[first.pid] >= 1, "the first beat's first sweep", 30)

    # and a second beat, up and waiting on the lock (it logs Starting before it asks for it)
    second = start_beat("second")
    second_log = tmp_path / "second.log"
    poll(lambda: "beat: Starting..." in second_log.read_text(), "the second beat's start", 30)

    # when both run for five more sweep periods
    before = sweeps(broker)[first.pid]
    began = time.monotonic()
    poll(lambda: sweeps(broker)[first.pid] >= before + 5, "five more sweeps", 10 * SWEEP_SECONDS)
    both_ran = time.monotonic() - began

    # then only the first sent them, once per period
    sent = sweeps(broker)
    assert sent[second.pid] == 0
    assert sent[first.pid] - before <= both_ran / SWEEP_SECONDS + 1
    assert "Acquired lock" not in second_log.read_text()

    # when the first beat's host is lost: SIGKILL, its lock left behind in Redis
    stack.stop(first, sig=signal.SIGKILL)
    left = sweeps(broker)[first.pid]
    took = poll(lambda: sweeps(broker)[second.pid] >= 1, "the second beat's takeover", 30)

    # then the second sends the sweeps once the lock expired, within its timeout and one
    # poll (the slack is for a loaded machine), and not before: the lock held it back
    assert LOCK_SECONDS - POLL_SECONDS - 0.5 <= took <= LOCK_SECONDS + POLL_SECONDS + 3, took
    poll(lambda: sweeps(broker)[second.pid] >= 3, "the second beat's sweeps", 5 * SWEEP_SECONDS)
    assert sweeps(broker)[first.pid] == left
