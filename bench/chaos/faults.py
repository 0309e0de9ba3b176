"""The faults the chaos suite injects while shoppers order, each a function run in a thread of
its own for one burst. A fault acts on the real processes and engines (`Chaos`), records
every action it took, and heals what it broke before it returns (the gateway's settings, a
row lock), so that the next scenario starts from a whole system. Dead processes are brought
back by the supervisor, as systemd would in production.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import psutil
import psycopg
import redis

from bench.stack import PRODUCT_QUEUES

if TYPE_CHECKING:
    from bench.chaos.engines import PrivatePostgres, PrivateRedis
    from bench.chaos.supervisor import Supervisor

WORKERS = tuple(f"worker-{queue}" for queue in PRODUCT_QUEUES)
TASKS = {
    "reservations": "orders.reserve_orders",
    "payments": "orders.settle_payments",
    "callbacks": "orders.deliver_callbacks",
    "maintenance": "orders.sweep",
}
HEALTHY_GATEWAY = {
    "latency_ms": 20,
    "latency_jitter_ms": 0,
    "error_rate": 0.0,
    "error_after_charge_rate": 0.0,
    "drop_rate": 0.0,
    "quota_rps": 0,
    "quota_burst": 0,
}


@dataclass
class Timing:
    """How long one scenario's faults go on, and how hard."""

    burst_seconds: float
    kill_every: float  # seconds between worker kills
    roll_every: float  # seconds between rolling restarts
    redis_down_seconds: float
    gateway_down_seconds: float
    time_limit_seconds: int  # the stack's CELERY_TASK_TIME_LIMIT


@dataclass
class Chaos:
    """What a fault may touch, and where it writes down what it did."""

    supervisor: Supervisor
    pg: PrivatePostgres
    redis: PrivateRedis
    sandbox: httpx.Client
    broker_url: str
    timing: Timing
    product_ids: list[int]
    stop: threading.Event = field(default_factory=threading.Event)
    actions: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def act(self, what: str) -> None:
        self.actions[what] += 1
        self.log.append(f"{time.monotonic() - self.t0:6.1f}s {what}")

    def wait(self, seconds: float) -> bool:
        """Sleep; False once the burst is over (the fault should heal and return)."""
        return not self.stop.wait(seconds)

    def at(self, share: float) -> bool:
        """Sleep until `share` of the burst has passed; False if it ended first."""
        due = self.t0 + share * self.timing.burst_seconds
        return self.wait(max(0.0, due - time.monotonic()))

    def gateway(self, **settings: object) -> None:
        self.sandbox.post("/_sandbox/config", json=settings).raise_for_status()


Fault = Callable[[Chaos], None]


def worker_kill(chaos: Chaos) -> None:
    """SIGKILL a Celery worker every few seconds, alternating a pool process (the parent forks
    a new one; `task_reject_on_worker_lost` requeues its message) and the parent itself (its
    prefetched message stays unacknowledged; the supervisor starts a new worker)."""
    turn = 0
    while chaos.wait(chaos.timing.kill_every):
        name = WORKERS[turn % len(WORKERS)]
        proc = chaos.supervisor.process(name)
        turn += 1
        if proc is None:
            continue
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if turn % 2:
                children = psutil.Process(proc.pid).children()
                if children:
                    os.kill(children[0].pid, signal.SIGKILL)
                    chaos.act("SIGKILL worker pool process")
            else:
                os.kill(proc.pid, signal.SIGKILL)
                chaos.act("SIGKILL worker parent")


def redis_restart(chaos: Chaos) -> None:
    """Redis killed and started empty mid-burst: broker queues, unacked messages, tickets,
    nudge marks, rate-limit buckets and drain rates are all gone."""
    for share in (0.35, 0.75):
        if not chaos.at(share):
            return
        chaos.redis.restart(down_seconds=chaos.timing.redis_down_seconds)
        chaos.act("Redis SIGKILLed and restarted empty")


def postgres(chaos: Chaos) -> None:
    """Every connection to the database terminated, twice; then a crash restart (immediate
    shutdown, WAL recovery)."""
    for share in (0.2, 0.45):
        if not chaos.at(share):
            return
        try:
            chaos.act(f"pg_terminate_backend x{chaos.pg.terminate_backends()}")
        except psycopg.Error:
            chaos.act("pg_terminate_backend: server not answering")
    if chaos.at(0.7):
        chaos.pg.restart(immediate=True)
        chaos.act("PostgreSQL crash-restarted (pg_ctl -m immediate)")


def gateway_faults(chaos: Chaos) -> None:
    """For the whole burst: 15 % of charges answered 500 after they were recorded, 10 %
    dropped without an answer, latency 0-1.4 s against a 1.2 s client time-out (time-outs
    with the charge made), and a quota of 8 requests/s, below the offered load (429s)."""
    chaos.gateway(
        error_after_charge_rate=0.15,
        drop_rate=0.1,
        latency_ms=700,
        latency_jitter_ms=700,
        quota_rps=8,
        quota_burst=4,
    )
    chaos.act("gateway: 5xx after charge, drops, time-outs, 429 quota")
    try:
        chaos.stop.wait()
    finally:
        chaos.gateway(**HEALTHY_GATEWAY)


def gateway_down(chaos: Chaos) -> None:
    """The gateway answers every request 5xx, without doing anything, for a while."""
    if not chaos.at(0.15):
        return
    chaos.gateway(error_rate=1.0)
    chaos.act(f"gateway down for {chaos.timing.gateway_down_seconds:.0f} s")
    try:
        time.sleep(chaos.timing.gateway_down_seconds)
    finally:
        chaos.gateway(**HEALTHY_GATEWAY)


def rolling_restart(chaos: Chaos) -> None:
    """SIGTERM, one at a time: each gunicorn worker (the master forks a fresh one; the request
    in hand is finished first), each Celery worker (warm shutdown; the supervisor starts it
    again) and beat."""
    turn = 0
    while chaos.wait(chaos.timing.roll_every):
        target = ("gunicorn", *WORKERS, "beat")[turn % (len(WORKERS) + 2)]
        turn += 1
        proc = chaos.supervisor.process(target)
        if proc is None:
            continue
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if target == "gunicorn":
                for child in psutil.Process(proc.pid).children():
                    child.send_signal(signal.SIGTERM)
                    chaos.act("SIGTERM gunicorn worker")
                    if not chaos.wait(0.5):
                        return
            else:
                proc.send_signal(signal.SIGTERM)
                chaos.act(f"SIGTERM {target.split('-')[0]}")


def poison_and_time_limit(chaos: Chaos) -> None:
    """Poison on every queue (a body that is not JSON, an unknown task, a known task with
    arguments it cannot take), then the products' rows locked by another session for longer
    than the task time limit, so that a reservation batch blocks until Celery kills it."""
    broker = redis.Redis.from_url(chaos.broker_url)
    app = _celery(chaos.broker_url)
    for queue, task in TASKS.items():
        broker.lpush(queue, b"\x00not json at all\xff", b"[1, 2]", b'{"body": 1}')
        app.send_task("orders.no_such_task", args=[1], queue=queue)
        app.send_task(task, args=["not-an-id", {"x": 1}], kwargs={"bogus": True}, queue=queue)
        chaos.act("poison messages (5 per queue)")
    _lock_products(chaos, 0.3, chaos.timing.time_limit_seconds + 4.0)


def duplicates(chaos: Chaos) -> None:
    """Every message twice: a byte-identical copy of whatever waits in each queue (same task
    id), extra nudges of every task, and the broker's visibility-timeout redelivery (a restore
    pass with a 2 s timeout, as any consumer of the broker would run it) of messages a
    worker still holds."""
    from kombu import Connection

    broker = redis.Redis.from_url(chaos.broker_url)
    app = _celery(chaos.broker_url)
    locker = threading.Thread(target=_lock_products, args=(chaos, 0.3, 6.0), daemon=True)
    locker.start()
    while chaos.wait(0.3):
        try:
            for queue, task in TASKS.items():
                waiting = broker.lrange(queue, 0, 0)
                if waiting:
                    broker.lpush(queue, waiting[0])
                    chaos.act("byte-identical copy of a queued message")
                app.send_task(task, queue=queue)
            with Connection(chaos.broker_url, transport_options={"visibility_timeout": 2}) as conn:
                conn.default_channel.qos.restore_visible(num=100, interval=1)
            chaos.act("visibility-timeout restore pass")
        except Exception:
            chaos.act("duplicates: broker unreachable, trying again")


def _lock_products(chaos: Chaos, share: float, seconds: float) -> None:
    """Another session holds the scenario's product rows: reservation batches wait on it."""
    if not chaos.at(share):
        return
    try:
        with chaos.pg.connect() as conn:
            conn.execute(
                "SELECT id FROM shop_product WHERE id = ANY(%s) FOR NO KEY UPDATE",
                [chaos.product_ids],
            )
            chaos.act(f"product rows locked for {seconds:.0f} s")
            time.sleep(seconds)
            conn.rollback()
    except psycopg.Error:  # PostgreSQL restarted under the lock (all faults at once)
        chaos.act("lock holder lost its connection")


def _celery(broker_url: str):  # type: ignore[no-untyped-def]
    """A bare Celery app on the stack's broker (not the project's: no Django here)."""
    from celery import Celery

    return Celery("chaos", broker=broker_url, set_as_current=False)


def everything(chaos: Chaos) -> None:
    """All of the above at once, with the gateway degraded rather than down (both set its
    one configuration)."""
    threads = [
        threading.Thread(target=fault, args=(chaos,), daemon=True)
        for fault in (
            worker_kill,
            redis_restart,
            postgres,
            gateway_faults,
            rolling_restart,
            poison_and_time_limit,
            duplicates,
        )
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


SCENARIOS: dict[str, Fault] = {
    "worker_kill": worker_kill,
    "redis_restart": redis_restart,
    "postgres": postgres,
    "gateway_faults": gateway_faults,
    "gateway_down": gateway_down,
    "rolling_restart": rolling_restart,
    "poison_time_limit": poison_and_time_limit,
    "duplicates": duplicates,
    "all_together": everything,
}
