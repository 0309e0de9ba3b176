"""Round trips over a window of the benchmark: PostgreSQL statements (pg_stat_statements),
transactions and WAL bytes (pg_stat_database, pg_stat_wal) of the bench database, and Redis
commands (INFO commandstats). Divided by the orders of the window (accepted in a saturation
probe, paid in an end-to-end run), they are the cost per order that no clock can hide; each
statement's execution time says which one the database spends itself on.

pg_stat_statements must be in the server's shared_preload_libraries; without it the
statement counts are reported as unavailable (with the reason) and the rest still is.
Redis counts are server-wide: run the benchmark on a quiet machine.
"""

from __future__ import annotations

from typing import Any

import psycopg
import redis

TOP = 12


class RoundTrips:
    def __init__(self, database_url: str, redis_url: str) -> None:
        self.database_url = database_url
        self.redis = redis.Redis.from_url(redis_url)
        self.statements_error: str | None = None
        self._before: dict[str, float] = {}

    def _db(self) -> psycopg.Connection:
        return psycopg.connect(self.database_url, autocommit=True)

    def start(self) -> None:
        with self._db() as db:
            try:
                db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                db.execute("SELECT pg_stat_statements_reset()")
                self.statements_error = None
            except psycopg.Error as exc:
                self.statements_error = str(exc).strip().splitlines()[0]
            self._before = self._counters(db)
        self.redis.config_resetstat()

    def _counters(self, db: psycopg.Connection) -> dict[str, float]:
        xacts, rollbacks = db.execute(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
        (wal,) = db.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()
        return {"commits": xacts, "rollbacks": rollbacks, "wal_bytes": float(wal)}

    def stop(self, per: float) -> dict[str, Any]:
        """What happened since start(), in total and per `per` (accepted orders)."""
        per = max(per, 1.0)
        with self._db() as db:
            after = self._counters(db)
            statements: dict[str, Any] = {"error": self.statements_error}
            if self.statements_error is None:
                rows = db.execute(
                    "SELECT calls, total_exec_time,"
                    " left(regexp_replace(query, '\\s+', ' ', 'g'), 160)"
                    " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
                    " WHERE d.datname = current_database() ORDER BY calls DESC"
                ).fetchall()
                total = sum(calls for calls, _, _ in rows)
                entries = [
                    {"calls": c, "per_order": c / per, "exec_ms_per_order": ms / per, "query": q}
                    for c, ms, q in rows
                ]
                statements = {
                    "total": total,
                    "per_order": total / per,
                    "exec_ms_per_order": sum(ms for _, ms, _ in rows) / per,
                    "top": entries[:TOP],
                    "slowest": sorted(entries, key=lambda e: -e["exec_ms_per_order"])[:TOP],
                }
        commands = {
            name.removeprefix("cmdstat_"): int(stats["calls"])
            for name, stats in self.redis.info("commandstats").items()
        }
        commands.pop("info", None)
        commands.pop("config|resetstat", None)
        redis_total = sum(commands.values())
        delta = {k: after[k] - self._before.get(k, 0) for k in after}
        return {
            "orders": per,
            "postgres_statements": statements,
            "postgres_commits_per_order": delta["commits"] / per,
            "postgres_rollbacks_per_order": delta["rollbacks"] / per,
            "wal_bytes_per_order": delta["wal_bytes"] / per,
            "redis_commands_per_order": redis_total / per,
            "redis_commands": {
                k: v / per for k, v in sorted(commands.items(), key=lambda i: -i[1])
            },
        }
