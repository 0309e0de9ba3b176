"""What the hot parent rows' foreign keys and the commit flush cost intake and claims, measured
against the real PostgreSQL (docs/performance.md, "Hot rows and group commit").

Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/campaign_hotrows \
       .venv/bin/python -m bench.hot_rows [--orders N] [--procs P] [--rounds R]
                                          [--delays 0,10,50] [--siblings 5] [--fks on,off]
                                          [--updater-hz 50]

It creates the database if missing and migrates it, seeds one product, one campaign and one
client (the hot parent rows every order and claim of a campaign names), then runs, for each
round and each mode (the modes alternate inside a round: A, B, A, B ...):

- claims: the claim's own statement (coupons.sql.CLAIM_SKIPPING, as
  coupons.services.claims runs it, autocommit), N of them from P processes at once;
- intake: the order INSERT (orders.sql.ORDER_INSERT, as orders.services.intake runs it,
  prepared, autocommit), one order for each coupon just claimed, from P processes at once;

while one more connection moves the campaign's budget hold (coupons.sql.BUDGET_HOLD, amount
0) `--updater-hz` times a second, as the reservation worker's batches do. A mode is a
foreign-key setting (`on`: the schema's keys to client, campaign, coupon and product;
`off`: those keys dropped for the run, added back NOT VALID after) and a commit_delay (µs,
with commit_siblings, set in each session). Per order it prints the PostgreSQL backends' CPU
(from /proc), the commits and the WAL (pg_stat_database, pg_stat_wal: the WAL counters are
the server's, other databases' writes included), the multixacts created, the wait events
sampled every 2 ms, and the rate.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import secrets
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/campaign_hotrows")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ["DEBUG"] = "false"

# The foreign keys to the hot parent rows: (table, column) -> parent (docs/architecture.md).
HOT_KEYS = [
    ("orders_order", "client_id", "shop_apiclient"),
    ("orders_order", "campaign_id", "coupons_campaign"),
    ("orders_order", "coupon_id", "coupons_coupon"),
    ("orders_orderline", "product_id", "shop_product"),
    ("coupons_coupon", "campaign_id", "coupons_campaign"),
    ("coupons_coupon", "client_id", "shop_apiclient"),
]


def dsn() -> str:
    return os.environ["DATABASE_URL"]


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sync:
    """What a phase's processes share: their backends' pids, the start and the end."""

    pids: Any
    ready: Any
    go: Any
    out: Any
    release: Any


def _worker(kind: str, jobs: list, sql: str, session: list[str], sync: Sync) -> None:
    """One connection: its backend's pid to `pids`, then its jobs once `go` is set."""
    import psycopg

    pids, ready, go, out, release = sync.pids, sync.ready, sync.go, sync.out, sync.release

    with psycopg.connect(dsn(), autocommit=True) as conn:
        for setting in session:
            conn.execute(setting)
        pids.put(conn.info.backend_pid)
        ready.wait()
        go.wait()
        done = 0
        with conn.cursor() as cursor:
            for params in jobs:
                cursor.execute(sql, params, prepare=True)
                row = cursor.fetchone()
                if row is not None:
                    done += 1
                    if kind == "claim":
                        out.put((row[0], row[1], params["customer"]))
        out.put(("done", done))
        release.wait()  # the backend stays until its CPU has been read


def _updater(campaign_id: int, hz: float, stop) -> None:
    import psycopg

    from coupons import sql as coupons_sql

    with psycopg.connect(dsn(), autocommit=True) as conn, conn.cursor() as cursor:
        while not stop.is_set():
            cursor.execute(coupons_sql.BUDGET_HOLD, [0, time_now(), campaign_id, 0], prepare=True)
            time.sleep(1 / hz)


def time_now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


class Sampler(threading.Thread):
    """pg_stat_activity of the given backends every 2 ms: wait event, or CPU when none."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids, self.counts, self.stop = pids, Counter(), threading.Event()

    def run(self) -> None:
        import psycopg

        # From the postgres database: its own reads are not this database's commits.
        other = psycopg.conninfo.make_conninfo(dsn(), dbname="postgres")
        with psycopg.connect(other, autocommit=True) as conn, conn.cursor() as cursor:
            while not self.stop.is_set():
                cursor.execute(
                    "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU')"
                    " FROM pg_stat_activity WHERE pid = ANY(%s) AND state = 'active'",
                    [self.pids],
                    prepare=True,
                )
                self.counts.update(r[0] for r in cursor.fetchall())
                time.sleep(0.002)


def server_counters(cursor) -> dict[str, float]:
    cursor.execute("SELECT pg_stat_clear_snapshot()")
    cursor.execute(
        "SELECT d.xact_commit, w.wal_bytes, w.wal_sync, w.wal_write,"
        " mxid_age(db.datminmxid),"
        " (SELECT sum(blks_zeroed) FROM pg_stat_slru WHERE name LIKE 'MultiXact%%')"
        " FROM pg_stat_database d, pg_stat_wal w, pg_database db"
        " WHERE d.datname = current_database() AND db.datname = current_database()"
    )
    names = ["commits", "wal_bytes", "wal_syncs", "wal_writes", "multixacts", "mx_pages"]
    return dict(zip(names, map(float, cursor.fetchone()), strict=True))


def run_phase(kind, sql, jobs, *, procs, session, campaign_id, hz):
    """Runs `jobs` split over `procs` connections; returns the figures and the rows made."""
    import psycopg

    ctx = mp.get_context("fork")
    pids, out = ctx.Queue(), ctx.Queue()
    ready, go, release = ctx.Barrier(procs + 1), ctx.Event(), ctx.Event()
    sync = Sync(pids, ready, go, out, release)
    workers = [
        ctx.Process(target=_worker, args=(kind, jobs[i::procs], sql, session, sync))
        for i in range(procs)
    ]
    for w in workers:
        w.start()
    backends = [pids.get() for _ in workers]
    ready.wait()
    stop = ctx.Event()
    updater = ctx.Process(target=_updater, args=(campaign_id, hz, stop)) if hz else None
    with psycopg.connect(dsn(), autocommit=True) as conn, conn.cursor() as cursor:
        before = server_counters(cursor)
        cpu = sum(cpu_of(p) for p in backends)
        sampler = Sampler(backends)
        sampler.start()
        if updater:
            updater.start()
        wall = time.perf_counter()
        go.set()
        made, done = [], 0
        while done < procs:
            item = out.get()
            if item[0] == "done":
                done += 1
            else:
                made.append(item)
        wall = time.perf_counter() - wall
        cpu = sum(cpu_of(p) for p in backends) - cpu
        sampler.stop.set()
        stop.set()
        release.set()
        for w in workers:
            w.join()
        if updater:
            updater.join()
        sampler.join()
        time.sleep(0.6)  # the backends report their commits as they exit
        after = server_counters(cursor)
    n = len(jobs)
    figures = {k: (after[k] - before[k]) / n for k in before}
    figures.update(cpu_ms=cpu / n * 1000, rate=n / wall, waits=sampler.counts, n=n)
    return figures, made


def fks(cursor, on: bool) -> None:
    """Adds the keys to the hot parents (NOT VALID: the INSERT's check is the same) where the
    schema has none, or drops every key on those columns."""
    for table, column, parent in HOT_KEYS:
        cursor.execute(
            "SELECT c.conname FROM pg_constraint c"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
            " WHERE c.contype = 'f' AND c.conrelid = %s::regclass AND a.attname = %s",
            [table, column],
        )
        names = [name for (name,) in cursor.fetchall()]
        if not on:
            for name in names:
                cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        elif not names:
            cursor.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT hot_rows_{table}_{column}"
                f" FOREIGN KEY ({column}) REFERENCES {parent} (id)"
                " DEFERRABLE INITIALLY DEFERRED NOT VALID"  # as Django declares them
            )


def schema_keys(cursor) -> set[tuple[str, str]]:
    """The hot columns that have a key now."""
    cursor.execute(
        "SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
        " WHERE c.contype = 'f'"
    )
    return set(cursor.fetchall()) & {(t, c) for t, c, _ in HOT_KEYS}


def show(label: str, f: dict) -> None:
    total = sum(f["waits"].values()) or 1
    top = ", ".join(f"{k} {v / total:.0%}" for k, v in f["waits"].most_common(5))
    print(
        f"{label:<34} {f['n']:>6}  {f['cpu_ms']:6.3f} ms PG CPU/order  "
        f"{f['commits']:5.2f} commits  {f['wal_bytes']:7.0f} B WAL  "
        f"{f['wal_syncs']:5.3f} syncs  {f['multixacts']:6.3f} mxids  "
        f"{f['rate']:7.0f}/s  | {top}",
        flush=True,
    )


def claims_for(tag: str, count: int, campaign, client) -> list[dict]:
    """The claim statement's parameters, as coupons.services.claims builds them."""
    from django.conf import settings
    from django.utils import timezone

    from coupons.models import Campaign, Coupon

    return [
        {
            "campaign": campaign.pk,
            "slug": campaign.slug,
            "active": Campaign.Status.ACTIVE.value,
            "now": timezone.now(),
            "customer": f"{tag}-{i}",
            "start": secrets.randbelow(max(1, settings.COUPON_SLICES)),
            "code": secrets.token_hex(8).upper(),
            "client": client.pk,
            "issued": Coupon.Status.ISSUED.value,
            "key": f"{tag}-{i}",
        }
        for i in range(count)
    ]


def orders_for(tag: str, made: list, product, campaign, client) -> list[list]:
    """The order INSERT's parameters (as orders.services.intake binds them), one order for
    each coupon claimed: (id, code, customer) from the claims' RETURNING."""
    from django.utils import timezone

    from orders.models import Order

    at = timezone.now()
    return [
        [
            uuid.uuid4(), client.pk, customer, campaign.pk, coupon_id, code,
            Order.Status.RECEIVED.value, 3000, 2500, 500, "CNY",
            "http://127.0.0.1:9/callback", f"o-{tag}-{i}", "0" * 64, None,
            at, at, "", True, [product.pk], [product.sku], [1], [3000],
        ]
        for i, (coupon_id, code, customer) in enumerate(made)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--delays", default="0", help="commit_delay values, µs")
    parser.add_argument("--siblings", type=int, default=5)
    parser.add_argument("--fks", default="on,off")
    parser.add_argument("--updater-hz", type=float, default=50)
    args = parser.parse_args()
    from devtools.bootstrap import ensure_database

    ensure_database(dsn())
    import django

    django.setup()
    import psycopg
    from django.core.management import call_command
    from django.db import connection

    from bench.stage_costs import bench_campaign
    from coupons import sql as coupons_sql
    from orders import sql as orders_sql

    call_command("migrate", verbosity=0)
    delays, keys = args.delays.split(","), args.fks.split(",")
    # One product, one campaign and one client: the hot rows. Coupons to spare, since the
    # claimers' slices run dry unevenly.
    total = args.orders * args.rounds * len(delays) * len(keys)
    product, campaign, client = bench_campaign(total, coupons=2 * total)
    run = uuid.uuid4().hex[:8]
    connection.close()
    with psycopg.connect(dsn(), autocommit=True) as conn, conn.cursor() as cursor:
        as_migrated = schema_keys(cursor)
    for r in range(args.rounds):
        for delay, fk in [(int(d), k) for d in delays for k in keys]:
            with psycopg.connect(dsn(), autocommit=True) as conn, conn.cursor() as cursor:
                fks(cursor, fk == "on")
            label, tag = f"fk={fk} commit_delay={delay}", f"{run}-{r}-{fk}-{delay}"
            phase = {
                "procs": args.procs,
                "session": [
                    f"SET commit_delay = {delay}",
                    f"SET commit_siblings = {args.siblings}",
                ],
                "campaign_id": campaign.pk,
                "hz": args.updater_hz,
            }
            claims = claims_for(tag, args.orders, campaign, client)
            f, made = run_phase("claim", coupons_sql.CLAIM_SKIPPING, claims, **phase)
            show(f"claims  {label}", f)
            orders = orders_for(tag, made, product, campaign, client)
            f, _ = run_phase("order", orders_sql.ORDER_INSERT, orders, **phase)
            show(f"intake  {label}", f)
    with psycopg.connect(dsn(), autocommit=True) as conn, conn.cursor() as cursor:
        fks(cursor, False)  # back to the schema the migrations made
        for table, column, parent in HOT_KEYS:
            if (table, column) in as_migrated:
                cursor.execute(
                    f"ALTER TABLE {table} ADD FOREIGN KEY ({column}) REFERENCES {parent} (id)"
                    " DEFERRABLE INITIALLY DEFERRED"
                )


if __name__ == "__main__":
    main()
