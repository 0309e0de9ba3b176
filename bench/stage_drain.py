"""A stage's drain rate with 1, 2, ... worker processes, the other stages stopped: does a
stage grow with its processes (orders.services.nudges' lanes)?

Usage: .venv/bin/python -m bench.stage_drain [--stages reserve,pay] [--processes 1,2]
                                             [--orders 20000]
For each stage and each process count: a fresh line of `--orders` orders of one campaign
(bulk-inserted waiting, as bench/seed.py does; for `pay`, reserved here first), then that
many Celery workers of the stage only (one pool process each, WORKER_LANES = the count), one
nudge, and the clock runs until the line is empty. It prints per run the drain rate, the
CPU per order of the workers, of PostgreSQL and of the sandbox gateway (one process: for
`pay` it may be the limit), and what sampling pg_stat_activity every
20 ms saw: the share of samples with two or more of the run's backends inside a transaction
at once (both in a batch) and running a statement at once, and with one waiting for a lock
(and the commonest wait events); then each count's rate against one process's. Every
worker logs its batches, so each one's share of the work is counted.

Its own database and Redis DBs (STAGE_DATABASE_URL, STAGE_REDIS_URL, STAGE_BROKER_URL,
default campaign_stages and Redis 12/13) and sandbox port (STAGE_SANDBOX_PORT, 8767), so
it runs beside the dev stack and the suite. A ratio means something only on a machine
with a core per process plus PostgreSQL's: on a busy or small one, read the overlap, the
lock waits and the CPU per order instead.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE_URL = os.environ.get(
    "STAGE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/campaign_stages"
)
REDIS_URL = os.environ.get("STAGE_REDIS_URL", "redis://127.0.0.1:6379/12")
BROKER_URL = os.environ.get("STAGE_BROKER_URL", "redis://127.0.0.1:6379/13")
SANDBOX_PORT = int(os.environ.get("STAGE_SANDBOX_PORT", "8767"))
LOGS = ROOT / ".run" / "stage-drain"
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "bench.settings",
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "CELERY_BROKER_URL": BROKER_URL,
    "PAYMENT_GATEWAY_URL": f"http://127.0.0.1:{SANDBOX_PORT}",
    "PAYMENT_GATEWAY_KEY": "stage-sandbox-key",
    "GATEWAY_RPS": "1000000",  # the stage, not the quota: no token waits
    "DEBUG": "false",
    "SECRET_KEY": "bench-only-not-secret",
    "PYTHONUNBUFFERED": "1",
}
os.environ.update(ENV)
os.environ["LOG_LEVEL"] = "WARNING"  # this process reserves `pay`'s orders: not a line each
QUEUE = {"reserve": "reservations", "pay": "payments"}
BATCH_LINE = {"reserve": "reservation batch:", "pay": "payment batch:"}
SAMPLE_SECONDS = 0.02
BOTH = 2  # backends active in one sample: two processes at work at once


def setup() -> None:
    from bench import seed

    seed.prepare_database(ENV)


def fresh_line(stage: str, orders: int) -> int:
    """Empty tables and Redis DBs, the fixtures, `orders` waiting orders; returns the
    campaign. For `pay`, the orders are reserved here, then the broker is emptied of the
    payment nudges that made: the run's own nudge starts the clock."""
    import redis
    from django.apps import apps
    from django.db import connection

    from bench import seed

    for url in (REDIS_URL, BROKER_URL):
        redis.Redis.from_url(url).flushdb()
    tables = [
        m._meta.db_table
        for label in seed.APPS_TRUNCATED[:3]
        for m in apps.get_app_config(label).get_models()
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    fixtures = seed.create_fixtures()
    seed.seed_waiting_orders(fixtures=fixtures, start=1, count=orders, progress=False)
    if stage == "pay":
        from orders import services

        campaign = fixtures.scale_campaign_id
        while services.reservations_take_batch(campaign_id=campaign, limit=500).seen:
            pass
        redis.Redis.from_url(BROKER_URL).flushdb()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE orders_order")
    return fixtures.scale_campaign_id


def left(stage: str, campaign_id: int) -> int:
    from django.db import connection

    status = "received" if stage == "reserve" else "reserved"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM orders_order WHERE campaign_id = %s AND status = %s",
            [campaign_id, status],
        )
        return cursor.fetchone()[0]


def start_workers(stage: str, count: int) -> list[tuple[subprocess.Popen[bytes], Path]]:
    from devtools import processes

    LOGS.mkdir(parents=True, exist_ok=True)
    started = []
    for n in range(1, count + 1):
        log = LOGS / f"{stage}-{count}p-{n}.log"
        argv = processes.worker_argv(QUEUE[stage], node=f"stage{n}", concurrency=1)
        env = {**ENV, "WORKER_LANES": str(count)}
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append((process, log))
    deadline = time.monotonic() + 60
    while not all(b" ready." in log.read_bytes() for _, log in started):
        if time.monotonic() > deadline:
            raise SystemExit(f"workers did not start; see {LOGS}")
        time.sleep(0.2)
    return started


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for p in [process, *process.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def postgres_cpu(database: str) -> float:
    """CPU of the backends serving `database` now (psutil; same machine)."""
    import psutil

    total = 0.0
    for p in psutil.process_iter(["cmdline", "cpu_times"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if cmd.startswith("postgres:") and f" {database} " in f"{cmd} ":
            total += p.info["cpu_times"].user + p.info["cpu_times"].system
    return total


def one_run(stage: str, processes: int, orders: int, sandbox: int) -> dict[str, Any]:
    from django.db import connection

    from orders.services import nudges

    campaign_id = fresh_line(stage, orders)
    workers = start_workers(stage, processes)
    pids = [p.pid for p, _ in workers]
    database = connection.settings_dict["NAME"]
    own = connection.cursor().connection.info.backend_pid
    waits: Counter[str] = Counter()
    samples = overlap = inside = lock_samples = 0
    try:
        cpu0, pg0, gw0 = cpu_seconds(pids), postgres_cpu(database), cpu_seconds([sandbox])
        began = time.perf_counter()
        if stage == "reserve":
            nudges.nudge_reservations(campaign_id, force=True)
        else:
            nudges.nudge_payments(force=True)
        while left(stage, campaign_id):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> %s AND backend_type = 'client backend'",
                    [database, own],
                )
                rows = cursor.fetchall()
            active = [r for r in rows if r[0] == "active"]
            samples += 1
            overlap += len(active) >= BOTH
            inside += sum(r[0] != "idle" for r in rows) >= BOTH
            locked = [f"{r[1]}:{r[2]}" for r in active if r[1] == "Lock"]
            lock_samples += bool(locked)
            waits.update(f"{r[1]}:{r[2]}" for r in active if r[1])
            time.sleep(SAMPLE_SECONDS)
        seconds = time.perf_counter() - began
        cpu, pg = cpu_seconds(pids) - cpu0, postgres_cpu(database) - pg0
        gateway = cpu_seconds([sandbox]) - gw0
    finally:
        for process, _ in workers:
            os.killpg(process.pid, 15)
        for process, _ in workers:
            process.wait(timeout=30)
    per_worker = [
        len(re.findall(re.escape(BATCH_LINE[stage]), log.read_text(errors="replace")))
        for _, log in workers
    ]
    return {
        "stage": stage,
        "processes": processes,
        "orders": orders,
        "seconds": seconds,
        "rate": orders / seconds,
        "worker_cpu_ms_per_order": cpu * 1000 / orders,
        "postgres_cpu_ms_per_order": pg * 1000 / orders,
        "sandbox_cpu_ms_per_order": gateway * 1000 / orders,
        "overlap": overlap / max(1, samples),
        "both_in_a_batch": inside / max(1, samples),
        "lock_waits": lock_samples / max(1, samples),
        "waits": dict(waits.most_common(5)),
        "batches_per_worker": per_worker,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", default="reserve,pay")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--orders", type=int, default=20_000)
    args = parser.parse_args()
    setup()
    from devtools import processes as table

    sandbox = subprocess.Popen(
        table.sandbox_argv(
            table.Sandbox(port=SANDBOX_PORT, latency_ms=0, key=ENV["PAYMENT_GATEWAY_KEY"])
        ),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5)
        for stage in args.stages.split(","):
            runs = [
                one_run(stage, int(n), args.orders, sandbox.pid) for n in args.processes.split(",")
            ]
            for run in runs:
                print(
                    f"{stage:<8} {run['processes']} proc  {run['rate']:8.0f} orders/s "
                    f"x{run['rate'] / runs[0]['rate']:.2f}  worker CPU "
                    f"{run['worker_cpu_ms_per_order']:.3f} ms/order  PostgreSQL "
                    f"{run['postgres_cpu_ms_per_order']:.3f} ms/order  sandbox gateway "
                    f"{run['sandbox_cpu_ms_per_order']:.3f} ms/order  both in a batch "
                    f"{run['both_in_a_batch']:.0%}  both in a statement {run['overlap']:.0%}  "
                    f"lock waits {run['lock_waits']:.0%}  "
                    f"batches per worker {run['batches_per_worker']}  waits {run['waits']}",
                    flush=True,
                )
    finally:
        sandbox.terminate()


if __name__ == "__main__":
    main()
