"""What the run measures besides the load generator's own records: CPU seconds and RSS of
every process kind (psutil, once a second), the pipeline's backlog from the database, the
Celery queues' lengths, and Redis memory.

Process kinds are the stack's own processes with their children (gunicorn's workers, the
Celery pool), PostgreSQL split into this database's backends and the server's shared
background processes, redis-server, the load generator and this orchestrator. CPU is
accumulated per process as last seen, so processes that come and go still count.
PostgreSQL and Redis are the machine's shared servers: their figures include any other
client's work at the same time (the dev stack, a test run), which the report says.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
import psycopg
import redis

from bench import yardstick
from bench.stack import (
    BROKER_URL,
    DATABASE_URL,
    FLOOR_QUEUE,
    PRODUCT_QUEUES,
    REDIS_URL,
    Stack,
    accept_queue,
)

BENCH_DB = DATABASE_URL.rsplit("/", 1)[-1]  # campaign_bench; the cluster's own: campaign
Snapshot = dict[str, float]


@dataclass
class _Seen:
    kind: str
    cpu: float
    rss: int


@dataclass
class Sampler:
    """A 1 Hz sampling thread. `snapshot()` also samples at once, for phase boundaries."""

    stack: Stack
    database_url: str
    interval: float = 1.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    db_enabled: bool = True
    # Tables whose dead tuples and autovacuum runs each sample reads, with the database's
    # size (the soak: does the database grow, does autovacuum keep up); none by default.
    tables: tuple[str, ...] = ()
    # Every this many samples, the machine's speed (bench/yardstick.py) goes in the row as
    # `yardstick_ms`: the soak's control for every process's CPU per order; 0: never.
    yardstick_every: int = 0
    _seen: dict[tuple[int, float], _Seen] = field(default_factory=dict)
    _procs: dict[tuple[int, float], psutil.Process] = field(default_factory=dict)
    _peak_sum: dict[str, int] = field(default_factory=dict)
    _peak_one: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _db: psycopg.Connection[Any] | None = None
    _broker: redis.Redis | None = None
    _postmaster: psutil.Process | None = None
    _redis_server: psutil.Process | None = None

    def start(self) -> None:
        self._db = psycopg.connect(_libpq(self.database_url), autocommit=True)
        self._broker = redis.Redis.from_url(BROKER_URL)
        self._postmaster = _find_postmaster()
        self._redis_server = _find_redis_server(REDIS_URL)
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._db is not None:
            self._db.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a failed sample must not end the run
                self.sample()

    # --- process kinds ----------------------------------------------------------------------

    def _kinds(self) -> dict[str, list[psutil.Process]]:
        kinds: dict[str, list[psutil.Process]] = {}
        for name, popen in list(self.stack.procs.items()):
            kinds[name] = self._tree(popen.pid)
        kinds["orchestrator"] = [self._proc(os.getpid())]
        if self._postmaster is not None:
            bench: list[psutil.Process] = []
            shared = [self._postmaster]
            with contextlib.suppress(psutil.Error):
                for child in self._postmaster.children():
                    try:
                        title = " ".join(child.cmdline())
                    except psutil.Error:
                        continue
                    if BENCH_DB in title:
                        bench.append(self._proc(child.pid))
                    elif "(" not in title:  # not a client backend: checkpointer, WAL, autovacuum
                        shared.append(self._proc(child.pid))
            kinds["postgres"] = bench
            kinds["postgres-shared"] = shared
        if self._redis_server is not None:
            kinds["redis"] = [self._redis_server]
        return kinds

    def _proc(self, pid: int) -> psutil.Process:
        proc = psutil.Process(pid)
        key = (pid, proc.create_time())
        return self._procs.setdefault(key, proc)

    def _tree(self, pid: int) -> list[psutil.Process]:
        try:
            root = self._proc(pid)
            return [root, *(self._proc(c.pid) for c in root.children(recursive=True))]
        except psutil.Error:
            return []

    # --- sampling -----------------------------------------------------------------------------

    def sample(self) -> dict[str, Any]:
        with self._lock:
            now = time.time()
            rss_sum: dict[str, int] = {}
            for kind, procs in self._kinds().items():
                total = 0
                for proc in procs:
                    try:
                        with proc.oneshot():
                            times = proc.cpu_times()
                            rss = proc.memory_info().rss
                            key = (proc.pid, proc.create_time())
                    except psutil.Error:
                        continue
                    self._seen[key] = _Seen(kind, times.user + times.system, rss)
                    total += rss
                    self._peak_one[kind] = max(self._peak_one.get(kind, 0), rss)
                rss_sum[kind] = total
                self._peak_sum[kind] = max(self._peak_sum.get(kind, 0), total)
            machine = psutil.cpu_times()
            busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
            busy += getattr(machine, "steal", 0.0)
            row: dict[str, Any] = {
                "t": now,
                "cpu": self._cpu(),
                "rss": rss_sum,
                "machine_busy": busy,
            }
            row["machine_steal"] = getattr(machine, "steal", 0.0)
            if self.yardstick_every and len(self.rows) % self.yardstick_every == 0:
                row["yardstick_ms"] = yardstick.measure()
            row.update(self._backlog())
            row.update(self._table_stats())
            row["queues"] = self._queues()
            row["accept_queue"] = accept_queue()
            self.rows.append(row)
            return row

    def _cpu(self) -> Snapshot:
        totals: Snapshot = {}
        for seen in self._seen.values():
            totals[seen.kind] = totals.get(seen.kind, 0.0) + seen.cpu
        return totals

    def snapshot(self) -> tuple[float, Snapshot]:
        row = self.sample()
        return row["t"], dict(row["cpu"])

    def _backlog(self) -> dict[str, Any]:
        if not self.db_enabled or self._db is None:
            return {}
        try:
            received, reserved = self._db.execute(
                "SELECT count(*) FILTER (WHERE status = 'received'),"
                " count(*) FILTER (WHERE status = 'reserved')"
                " FROM orders_order WHERE status IN ('received', 'reserved')"
            ).fetchone() or (0, 0)
            (callbacks,) = self._db.execute(
                "SELECT count(*) FROM orders_callbackdelivery WHERE state = 'pending'"
            ).fetchone() or (0,)
        except psycopg.Error:
            return {}
        return {"received": received, "reserved": reserved, "callbacks_pending": callbacks}

    def _table_stats(self) -> dict[str, Any]:
        if not self.tables or self._db is None:
            return {}
        try:
            (size,) = self._db.execute(
                "SELECT pg_database_size(current_database())"
            ).fetchone() or (0,)
            rows = self._db.execute(
                "SELECT relname, n_dead_tup, autovacuum_count, autoanalyze_count"
                " FROM pg_stat_user_tables WHERE relname = ANY(%s)",
                [list(self.tables)],
            ).fetchall()
        except psycopg.Error:
            return {}
        stats: dict[str, Any] = {
            "db_bytes": size,
            "dead_tuples": {name: dead for name, dead, _, _ in rows},
            "autovacuums": {name: runs for name, _, runs, _ in rows},
            "autoanalyzes": {name: runs for name, _, _, runs in rows},
        }
        if self._broker is not None:
            with contextlib.suppress(redis.RedisError):
                stats["redis_used_memory"] = self._broker.info("memory")["used_memory"]
        return stats

    def _queues(self) -> dict[str, int]:
        if self._broker is None:
            return {}
        try:
            pipe = self._broker.pipeline(transaction=False)
            for queue in (*PRODUCT_QUEUES, FLOOR_QUEUE):
                pipe.llen(queue)
            return dict(zip((*PRODUCT_QUEUES, FLOOR_QUEUE), pipe.execute(), strict=True))
        except redis.RedisError:
            return {}

    def peaks(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                kind: {"sum_bytes": self._peak_sum[kind], "largest_bytes": self._peak_one[kind]}
                for kind in self._peak_sum
            }

    def machine_between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds the whole machine was busy in [start, end], ours, and the rest: work of
        processes outside this benchmark (a test run, the dev stack) that shared the cores."""
        rows = [r for r in self.rows if start - 1.5 <= r["t"] <= end + 1.5]
        if len(rows) < 2:  # noqa: PLR2004
            return {}
        first, last = rows[0], rows[-1]
        busy = last["machine_busy"] - first["machine_busy"]
        ours = sum(cpu_delta(first["cpu"], last["cpu"]).values())
        seconds = last["t"] - first["t"]
        return {
            "seconds": seconds,
            "machine_busy_s": busy,
            "ours_s": ours,
            "others_s": max(0.0, busy - ours),
            "others_share_of_cores": max(0.0, busy - ours)
            / max(1e-3, seconds * psutil.cpu_count()),
        }

    def backlog_between(self, start: float, end: float) -> list[tuple[float, int, int]]:
        """(t, received + reserved, callbacks pending) samples within [start, end]."""
        return [
            (r["t"], r["received"] + r["reserved"], r["callbacks_pending"])
            for r in self.rows
            if start <= r["t"] <= end and "received" in r
        ]


def _find_redis_server(url: str) -> psutil.Process | None:
    """The redis-server serving `url`: the one listening on its port (several may run on a
    shared machine), else the only one there is."""
    port = str(redis.connection.parse_url(url).get("port") or 6379)
    servers = [
        p for p in psutil.process_iter(["name", "cmdline"]) if p.info["name"] == "redis-server"
    ]
    for proc in servers:
        if any(arg.endswith(f":{port}") or arg == port for arg in proc.info["cmdline"] or ()):
            return proc
    return servers[0] if len(servers) == 1 else None


WAIT_SQL = """
SELECT coalesce(wait_event_type, 'running'), coalesce(wait_event, '-'), left(query, 1024)
FROM pg_stat_activity
WHERE datname = %s AND state = 'active' AND pid <> pg_backend_pid()
"""
# Django names the table in the first selected column ("t"."id"), and after FROM/INTO/UPDATE.
_TABLE = re.compile(
    r'^SELECT\s+(?:DISTINCT\s+)?"(\w+)"\.|\b(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE
)


def statement_label(sql: str) -> str:
    """'SELECT coupons_campaign', 'INSERT orders_order', 'COMMIT': what a backend runs."""
    words = sql.strip().split(None, 1)
    verb = words[0].upper() if words else "?"
    table = _TABLE.search(sql.strip())
    name = (table.group(1) or table.group(2)) if table else ""
    lock = " FOR UPDATE" if "FOR UPDATE" in sql.upper() else ""
    return f"{verb} {name}{lock}".strip()


@dataclass
class WaitSampler:
    """What this database's active backends are doing, 10 times a second: running, or
    waiting (for a lock, on WAL, on I/O), and in which statement. Phases are summed later."""

    database_url: str
    interval: float = 0.1
    samples: list[tuple[float, list[tuple[str, str, str]]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="waits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(_libpq(self.database_url), autocommit=True) as db,
        ):
            while not self._stop.wait(self.interval):
                rows = db.execute(WAIT_SQL, [BENCH_DB]).fetchall()
                self.samples.append(
                    (time.time(), [(t, e, statement_label(q or "")) for t, e, q in rows])
                )

    def summary(self, start: float, end: float, top: int = 8) -> dict[str, Any]:
        """Share of active-backend samples per (state, statement) in [start, end]."""
        counts: dict[str, int] = {}
        total = 0
        for t, rows in self.samples:
            if start <= t <= end:
                for kind, event, label in rows:
                    key = f"{kind}:{event} in {label}" if kind != "running" else f"running {label}"
                    counts[key] = counts.get(key, 0) + 1
                    total += 1
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        seconds = max(1e-3, end - start)
        return {
            "active_backends_avg": total
            / max(1, sum(1 for t, _ in self.samples if start <= t <= end)),
            "top": [[key, round(n / total, 3)] for key, n in ranked] if total else [],
            "seconds": seconds,
        }


def cpu_delta(before: Snapshot, after: Snapshot) -> Snapshot:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in sorted(set(before) | set(after))}


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (units per second); 0 with fewer than two points."""
    if len(points) < 2:  # noqa: PLR2004
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def redis_memory() -> dict[str, Any]:
    """INFO used_memory (the whole server, shared) and the bytes of this run's own keys in
    DB 10 (fast state) and DB 11 (broker), summed with MEMORY USAGE, also by key prefix
    (the key up to its second ':' with digits folded, so per-customer keys add up)."""
    fast = redis.Redis.from_url(REDIS_URL)
    broker = redis.Redis.from_url(BROKER_URL)
    out: dict[str, Any] = {"used_memory": int(fast.info("memory")["used_memory"])}
    for name, client in (("fast_db", fast), ("broker_db", broker)):
        total = keys = 0
        prefixes: dict[str, int] = {}
        for key in client.scan_iter(count=1000):
            size = client.memory_usage(key) or 0
            total += size
            keys += 1
            text = key.decode(errors="replace")
            prefix = re.sub(r"\d+", "N", ":".join(text.split(":")[:3]))
            prefixes[prefix] = prefixes.get(prefix, 0) + size
        out[f"{name}_bytes"] = total
        out[f"{name}_keys"] = keys
        out[f"{name}_by_prefix"] = dict(sorted(prefixes.items(), key=lambda kv: -kv[1])[:8])
    return out


def wait_for(done: Callable[[], bool], *, timeout: float, every: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(every)
    return done()


def _find_postmaster() -> psutil.Process | None:
    for proc in psutil.process_iter(["name", "ppid"]):
        try:
            if proc.info["name"] in ("postgres", "postmaster"):
                parent = proc.parent()
                if parent is None or parent.name() not in ("postgres", "postmaster"):
                    return proc
        except psutil.Error:
            continue
    return None


def _libpq(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)
