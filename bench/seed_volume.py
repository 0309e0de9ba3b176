"""Fill a separate database with campaign-sized volume, quickly, for the admin's timings.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/campaign_volume \\
        .venv/bin/python -m bench.seed_volume --orders 1000000 --coupons 1000000

Creates the database if it is missing and migrates it, then writes the rows, chunk by chunk,
with one statement per chunk: INSERT ... SELECT generate_series for every table at once, as
data-modifying CTEs (no Python object per row). The whole load is one transaction, which drops
the big tables' secondary indexes first and builds them after the rows are in (one sort each
instead of a B-tree descent per row), skips the per-row foreign key checks (a superuser's
`session_replication_role = replica`: the rows are consistent by construction, and the test
checks every reference), then sets the counters; VACUUM ANALYZE follows. A progress bar shows
each phase; a run stopped before the commit leaves no order or coupon.

The rows are what the pipeline would have left after a nine-hour campaign: most orders paid,
some rejected, declined, cancelled, expired or refunded, the newest ones still reserved or
waiting in line (a few parked), each with its line, hold, payment, events and, for one in ten,
callback deliveries; coupons redeemed, held or issued to match. The campaign's counters
(coupons issued, budget held and spent) and the stock are set from those rows, so the
invariants hold and the admin's figures can be checked against the database.

It writes three apps' tables directly, as no product code may (each app's SQL is its own, in
its sql.py): a benchmark's fixture, so it lives in bench/, which may import every app.
It refuses a database that already holds orders or coupons: it is for a fresh, throwaway one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

PRODUCTS = 20
BAR_WIDTH = 30

# One row per order number g, everything the tables below need, computed in SQL. The newest
# orders are still in flight (waiting, then reserved); the rest are spread over the terminal
# statuses by a scrambled g, so each status is found all along the campaign.
_SOURCE = """
WITH base AS (
  SELECT g,
         %(order_base)s + g AS oid,
         CASE WHEN g <= %(coupons)s THEN %(coupon_base)s + g END AS cid,
         CASE WHEN g > %(coupons)s THEN NULL
              WHEN g %% 20 = 0 THEN %(side)s ELSE %(main)s END AS campaign,
         CASE WHEN g > %(orders)s - %(waiting)s THEN 'received'
              WHEN g > %(orders)s - %(waiting)s - %(reserved)s THEN 'reserved'
              WHEN (g * 7) %% 1000 = 999 THEN 'refunded'
              WHEN (g * 7) %% 1000 < 20 THEN 'rejected'
              WHEN (g * 7) %% 1000 < 40 THEN 'payment_failed'
              WHEN (g * 7) %% 1000 < 50 THEN 'cancelled'
              WHEN (g * 7) %% 1000 < 60 THEN 'expired'
              ELSE 'paid' END AS status,
         %(start)s::timestamptz + (g - 1) * %(step)s * interval '1 second' AS created,
         (0.2 + (g %% 5) * 0.1) * interval '1 second' AS t_res,
         (0.8 + ((g * 7919) %% 100) / 25.0) * interval '1 second' AS t_paid,
         1 + g %% %(products)s AS p,
         1 + g %% 2 AS qty,
         gen_random_uuid() AS pid
  FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
)
SELECT b.*,
       (%(product_ids)s::bigint[])[b.p] AS product_id,
       (%(product_skus)s::text[])[b.p] AS sku,
       (%(product_prices)s::bigint[])[b.p] AS price,
       (%(product_prices)s::bigint[])[b.p] * b.qty AS subtotal,
       CASE WHEN b.cid IS NULL THEN 0
            ELSE LEAST((%(product_prices)s::bigint[])[b.p] * b.qty, 2500) END AS discount,
       b.status = 'received' AND b.g %% 997 = 0 AS parked,
       b.g %% 10 = 0 AS wants_callback
FROM base b
"""

_COUPONS = """
INSERT INTO coupons_coupon (id, code, campaign_id, client_id, customer_id, slot, status,
                            max_discount, currency, valid_until, idempotency_key,
                            created_at, updated_at)
SELECT %(coupon_base)s + g, 'V' || lpad(g::text, 11, '0'),
       CASE WHEN g %% 20 = 0 THEN %(side)s ELSE %(main)s END,
       %(client)s, 'vol-' || g, 1,
       CASE WHEN g > %(orders)s THEN CASE WHEN g %% 10 = 0 THEN 'expired' ELSE 'issued' END
            WHEN g > %(orders)s - %(waiting)s THEN 'issued'
            WHEN g > %(orders)s - %(waiting)s - %(reserved)s THEN 'reserved'
            WHEN (g * 7) %% 1000 = 999 THEN 'redeemed'
            WHEN (g * 7) %% 1000 < 60 THEN 'issued'
            ELSE 'redeemed' END,
       2500, 'CNY', %(valid_until)s, 'vol-claim-' || g,
       %(start)s::timestamptz + (LEAST(g, %(orders)s) - 1) * %(step)s * interval '1 second',
       %(start)s::timestamptz + (LEAST(g, %(orders)s) - 1) * %(step)s * interval '1 second'
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
"""

_ORDERS = """
INSERT INTO orders_order (id, public_id, client_id, customer_id, campaign_id, coupon_id,
                          coupon_code, status, reason, subtotal, discount, payable, currency,
                          callback_url, idempotency_key, request_hash, queue_ticket,
                          parked_at, park_reason, created_at, updated_at)
SELECT oid, pid, %(client)s, 'vol-' || g, campaign, cid,
       CASE WHEN cid IS NULL THEN '' ELSE 'V' || lpad(g::text, 11, '0') END,
       status,
       CASE WHEN status = 'rejected' THEN (ARRAY['limit_reached', 'coupon_in_use',
            'out_of_stock'])[1 + g %% 3] ELSE '' END,
       subtotal, discount, subtotal - discount, 'CNY',
       CASE WHEN wants_callback THEN 'https://bot.example/cb' ELSE '' END,
       'vol-order-' || g, md5(g::text) || md5(g::text || 'x'), g,
       CASE WHEN parked THEN created + interval '5 seconds' END,
       CASE WHEN parked THEN 'IntegrityError: seeded poison order' ELSE '' END,
       created,
       created + CASE WHEN status IN ('received', 'reserved') THEN t_res ELSE t_paid END
FROM vol_src
"""

_LINES = """
INSERT INTO orders_orderline (order_id, product_id, sku, quantity, unit_price)
SELECT oid, product_id, sku, qty, price FROM vol_src
"""

_HOLDS = """
INSERT INTO orders_reservation (order_id, campaign_id, coupon_id, discount, expires_at,
                                closed_at, outcome, created_at, updated_at)
SELECT oid, campaign, cid, discount, created + t_res + interval '15 minutes',
       CASE WHEN status = 'reserved' THEN NULL ELSE created + t_paid END,
       CASE WHEN status IN ('paid', 'refunded') THEN 'sold'
            WHEN status = 'reserved' THEN '' ELSE 'released' END,
       created + t_res, created + t_paid
FROM vol_src
WHERE status NOT IN ('received', 'rejected')
"""

_PAYMENTS = """
INSERT INTO orders_payment (order_id, idempotency_key, amount, currency, status, charge_id,
                            attempts, last_error, next_attempt_at, created_at, updated_at)
SELECT oid, 'order-' || pid, subtotal - discount, 'CNY', pay_status,
       CASE WHEN pay_status IN ('succeeded', 'declined') THEN 'ch_vol_' || g ELSE '' END,
       CASE WHEN pay_status = 'parked' THEN 12 WHEN pay_status = 'not_required' THEN 0 ELSE 1 END,
       CASE WHEN pay_status = 'parked'
            THEN 'HTTP 503 gateway_unavailable: seeded outage' ELSE '' END,
       created + t_paid, created + t_res, created + t_paid
FROM (
  SELECT *,
         CASE WHEN status IN ('paid', 'refunded') AND subtotal = discount THEN 'not_required'
              WHEN status IN ('paid', 'refunded') THEN 'succeeded'
              WHEN status = 'payment_failed' THEN 'declined'
              WHEN status = 'reserved' AND g %% 100 = 0 THEN 'parked'
              WHEN status = 'reserved' AND g %% 3 = 0 THEN 'pending'
         END AS pay_status
  FROM vol_src
) s
WHERE pay_status IS NOT NULL
"""

_EVENTS = """
INSERT INTO orders_orderevent (order_id, source, target, actor, data, created_at)
SELECT v.oid, e.source, e.target, e.actor, '{}'::jsonb, v.created + e.after
FROM vol_src v
CROSS JOIN LATERAL (VALUES
  ('received', 'reserved', 'worker:reserve', v.t_res,
   v.status NOT IN ('received', 'rejected')),
  ('received', 'rejected', 'worker:reserve', v.t_res, v.status = 'rejected'),
  ('payment:', 'payment:pending', 'worker:settle', v.t_res + interval '0.1 second',
   v.status IN ('paid', 'refunded', 'payment_failed') AND v.subtotal > v.discount),
  ('payment:pending', 'payment:succeeded', 'worker:settle', v.t_paid,
   v.status IN ('paid', 'refunded') AND v.subtotal > v.discount),
  ('payment:pending', 'payment:declined', 'worker:settle', v.t_paid,
   v.status = 'payment_failed'),
  ('reserved', 'paid', 'worker:settle', v.t_paid, v.status IN ('paid', 'refunded')),
  ('reserved', 'payment_failed', 'worker:settle', v.t_paid, v.status = 'payment_failed'),
  ('reserved', 'cancelled', 'chatbot', v.t_paid, v.status = 'cancelled'),
  ('reserved', 'expired', 'sweep:expire', v.t_paid, v.status = 'expired'),
  ('paid', 'refunded', 'staff:seed', v.t_paid + interval '1 second', v.status = 'refunded'),
  ('received', 'parked', 'worker:reserve', interval '5 seconds', v.parked)
) AS e(source, target, actor, after, applies)
WHERE e.applies
"""

_CALLBACKS = """
INSERT INTO orders_callbackdelivery (order_id, url, order_status, payload, state, attempts,
                                     next_attempt_at, last_error, delivered_at,
                                     created_at, updated_at)
SELECT oid, 'https://bot.example/cb', status, '{}'::jsonb,
       CASE WHEN g %% 10000 = 0 THEN 'failed' ELSE 'delivered' END,
       CASE WHEN g %% 10000 = 0 THEN 8 ELSE 1 END,
       created + t_paid,
       CASE WHEN g %% 10000 = 0 THEN 'HTTP 502 from the chatbot: seeded' ELSE '' END,
       CASE WHEN g %% 10000 = 0 THEN NULL ELSE created + t_paid + interval '0.2 second' END,
       created + t_paid, created + t_paid
FROM vol_src
WHERE wants_callback AND status NOT IN ('received', 'reserved')
"""

# The coupons issued go to the campaign's slices (its coupon counter): the issued and the
# total spread evenly over them, so that each slice's issued <= cap and the caps sum to the
# total, which the deferred trigger checks at commit.
_COUNTERS = """
WITH s AS (
  SELECT cp.id, count(k.id) AS issued, count(k.id) + count(k.id) / 20 + 1000 AS total,
         (SELECT count(*) FROM coupons_couponslice x WHERE x.campaign_id = cp.id) AS slices
  FROM coupons_campaign cp LEFT JOIN coupons_coupon k ON k.campaign_id = cp.id
  WHERE cp.id = ANY(%(campaigns)s)
  GROUP BY cp.id
), slices AS (
  UPDATE coupons_couponslice x
  SET issued = s.issued / s.slices + (x.number < s.issued %% s.slices)::int,
      cap = s.total / s.slices + (x.number < s.total %% s.slices)::int
  FROM s WHERE x.campaign_id = s.id
)
UPDATE coupons_campaign c
SET coupons_total = s.total
FROM s
WHERE c.id = s.id
"""

_BUDGETS = """
UPDATE coupons_campaign c
SET budget_held = s.held,
    budget_spent = s.spent
FROM (
  SELECT cp.id,
         (SELECT COALESCE(sum(discount), 0) FROM orders_order o
           WHERE o.campaign_id = cp.id AND o.status = 'reserved') AS held,
         (SELECT COALESCE(sum(discount), 0) FROM orders_order o
           WHERE o.campaign_id = cp.id AND o.status = 'paid') AS spent
  FROM coupons_campaign cp WHERE cp.id = ANY(%(campaigns)s)
) s
WHERE c.id = s.id
"""

_STOCK = """
UPDATE shop_product p
SET stock = p.stock_total - COALESCE(s.units, 0)
FROM (
  SELECT l.product_id, sum(l.quantity) AS units
  FROM orders_orderline l JOIN orders_order o ON o.id = l.order_id
  WHERE o.status IN ('reserved', 'paid', 'refunded')
  GROUP BY l.product_id
) s
WHERE p.id = s.product_id
"""

_TABLES = [
    "coupons_coupon",
    "coupons_campaign",
    "orders_order",
    "orders_orderline",
    "orders_reservation",
    "orders_payment",
    "orders_orderevent",
    "orders_callbackdelivery",
    "shop_product",
]

# The tables the load fills by the million. Their secondary indexes and unique constraints are
# dropped before the load and made again after it as migrate made them: one sort per index
# instead of a B-tree descent (and its WAL) per row and index, which made the seed slow down
# as the indexes outgrew the cache (docs/admin.md). Primary keys stay: ids ascend, so each
# insert appends to the last leaf, and the foreign keys depend on them.
_LOADED = [
    "coupons_coupon",
    "orders_order",
    "orders_orderline",
    "orders_reservation",
    "orders_payment",
    "orders_orderevent",
    "orders_callbackdelivery",
]

# Each secondary index of the tables: its name, its definition as the catalog gives it, and
# the statements that drop it and (when the models do not declare it) make it again; an index
# that backs a unique constraint is dropped and made with its constraint.
_SECONDARY = """
SELECT i.relname,
       pg_get_indexdef(i.oid) || coalesce(' / ' || pg_get_constraintdef(c.oid), ''),
       CASE WHEN c.oid IS NULL THEN format('DROP INDEX %%I.%%I', n.nspname, i.relname)
            ELSE format('ALTER TABLE %%s DROP CONSTRAINT %%I', t.oid::regclass, c.conname)
       END,
       CASE WHEN c.oid IS NULL THEN pg_get_indexdef(i.oid)
            ELSE format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s', t.oid::regclass, c.conname,
                        pg_get_constraintdef(c.oid))
       END
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = i.relnamespace
JOIN pg_class t ON t.oid = x.indrelid
LEFT JOIN pg_constraint c
  ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('u', 'x')
WHERE x.indrelid = ANY(%(tables)s::regclass[]) AND NOT x.indisprimary
ORDER BY array_position(%(tables)s::regclass[], x.indrelid), i.relname
"""


def _bar(label: str, done: int, total: int, began: float, doing: str = "") -> str:
    share = done / total if total else 1.0
    filled = int(BAR_WIDTH * share)
    return (
        f"\r  {label:<8} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {share:6.1%} "
        f"{done:>12,}/{total:,}  {time.monotonic() - began:6.1f} s  {doing:<46}"
    )


class SeedRefused(Exception):
    """The arguments or the database are not fit for seeding; nothing was written."""


def seed(
    *, orders: int, coupons: int, chunk: int = 100_000, hours: float = 9.0, out: TextIO
) -> None:
    """Create (if missing), migrate and fill the database Django is configured with: `orders`
    orders and `coupons` coupons of a campaign `hours` long, `chunk` orders per statement, with
    a progress bar on `out`. The rows, indexes and counters go in as one transaction, so a run
    stopped before its VACUUM leaves no order or coupon. Raises SeedRefused."""
    from django.core.management import call_command
    from django.db import connection, transaction

    from coupons.models import Coupon
    from orders.models import Order

    if orders < 1 or coupons < 1 or chunk < 1:
        raise SeedRefused("--orders, --coupons and --chunk must be positive.")
    _database(out)
    call_command("migrate", verbosity=0)
    name = connection.settings_dict["NAME"]
    if Order.objects.exists() or Coupon.objects.exists():
        raise SeedRefused(
            f"{name} already holds orders or coupons; "
            "seed_volume fills a fresh database (drop it, or name another in DATABASE_URL)."
        )
    began = time.monotonic()
    params = _fixtures(orders=orders, coupons=coupons, hours=hours)
    out.write(
        f"Seeding {orders:,} orders and {coupons:,} coupons into {name} (chunks of {chunk:,}):\n"
    )
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            _load(cursor, out, chunk=chunk, params=params)
    except BaseException:
        out.write(
            f"\nStopped before the commit: {name} holds the schema and the volume campaigns "
            "but no order or coupon (the load is one transaction); run the seed again.\n"
        )
        raise
    try:
        _vacuum(out)
    except BaseException:
        out.write(
            f"\nStopped during VACUUM ANALYZE: {name} holds every row and index, but some "
            "tables have neither statistics nor a visibility map, so the admin's plans are "
            "not production's: run VACUUM ANALYZE on it before timing pages.\n"
        )
        raise
    out.write(f"Done in {time.monotonic() - began:.0f} s.\n")


def _load(cursor: CursorWrapper, out: TextIO, *, chunk: int, params: dict[str, Any]) -> None:
    """Inside one transaction: drop the big tables' secondary indexes, fill the tables, build
    the indexes again, then set the counters, the stock and the sequences."""
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if cursor.fetchone()[0]:
        # The rows are consistent by construction (each order's children name the order
        # written by the same statement; coupons go in first), and the test checks every
        # foreign key of a seeded database: skip the per-row foreign key checks (one index
        # lookup each, queued to the commit) and the BEFORE DELETE guards, which fire on no
        # row here. Needs a superuser.
        cursor.execute("SET LOCAL session_replication_role = replica")
    else:
        # Checked per statement, so that no check is pending when the indexes are built.
        out.write("  (not a superuser: every row's foreign keys are checked, slower)\n")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
    cursor.execute("SET LOCAL work_mem = '256MB'")
    was = {(name, definition) for name, definition, _drop, _make in _secondary_indexes(cursor)}
    indexes = _dropped_indexes(cursor)
    _fill(cursor, out, "coupons", params["coupons"], chunk=chunk, steps=[_COUPONS], params=params)
    steps = [_ORDERS, _LINES, _HOLDS, _PAYMENTS, _EVENTS, _CALLBACKS]
    _fill(cursor, out, "orders", params["orders"], chunk=chunk, steps=steps, params=params)
    began = time.monotonic()
    for done, (name, _definition, _drop, make) in enumerate(indexes):
        out.write(_bar("indexes", done, len(indexes), began, name))
        out.flush()
        cursor.execute(make)
    out.write(_bar("indexes", len(indexes), len(indexes), began) + "\n")
    # Made again exactly as they were, or the whole load rolls back.
    now = {(name, definition) for name, definition, _drop, _make in _secondary_indexes(cursor)}
    if was != now:
        raise RuntimeError(f"indexes not made again as they were: {sorted(was ^ now)}")
    out.write("  counters, stock and sequences ...\n")
    # From here on the triggers fire again: the slices' caps are checked at the commit.
    cursor.execute("SET LOCAL session_replication_role = origin")
    cursor.execute(_COUNTERS, {"campaigns": [params["main"], params["side"]]})
    cursor.execute(_BUDGETS, {"campaigns": [params["main"], params["side"]]})
    cursor.execute(_STOCK)
    for table in ["coupons_coupon", "orders_order"]:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
            f"(SELECT max(id) FROM {table}))"
        )


def _secondary_indexes(cursor: CursorWrapper) -> list[tuple[str, str, str, str]]:
    """The big tables' secondary indexes: (name, definition, drop, make). An index the models
    declare is made by Django's own SQL, as migrate made it: the catalog's text of a predicate
    such as `status IN (...)` reads back as a different expression."""
    from django.apps import apps
    from django.db import connection, models

    editor = connection.schema_editor()
    declared = {}
    for model in apps.get_models():
        if model._meta.db_table in _LOADED:
            for item in [*model._meta.indexes, *model._meta.constraints]:
                if isinstance(item, (models.Index, models.UniqueConstraint)):
                    declared[item.name] = str(item.create_sql(model, editor))
    cursor.execute(_SECONDARY, {"tables": _LOADED})
    return [
        (name, definition, drop, declared.get(name, make))
        for name, definition, drop, make in cursor.fetchall()
    ]


def _dropped_indexes(cursor: CursorWrapper) -> list[tuple[str, str, str, str]]:
    """Drop, for the load, each secondary index that its statement makes again exactly as it
    is, and return those. Each is tried first on the still empty tables: one that comes back
    otherwise (the catalog's text of `target IN (...)` made by raw SQL reads back as another
    expression, which pg_dump would leave too) is put back as it was and kept up during the
    load."""
    dropped = []
    for name, definition, drop, make in _secondary_indexes(cursor):
        cursor.execute("SAVEPOINT seed_index_trial")
        cursor.execute(drop)
        cursor.execute(make)
        if (name, definition, drop, make) in _secondary_indexes(cursor):
            cursor.execute(drop)
            cursor.execute("RELEASE SAVEPOINT seed_index_trial")
            dropped.append((name, definition, drop, make))
        else:
            cursor.execute("ROLLBACK TO SAVEPOINT seed_index_trial")
            cursor.execute("RELEASE SAVEPOINT seed_index_trial")
    return dropped


def _vacuum(out: TextIO) -> None:
    """Statistics and visibility map, as autovacuum would leave them."""
    from django.db import connection

    began = time.monotonic()
    with connection.cursor() as cursor:
        for done, table in enumerate(_TABLES):
            out.write(_bar("vacuum", done, len(_TABLES), began, f"VACUUM ANALYZE {table}"))
            out.flush()
            cursor.execute(f"VACUUM ANALYZE {table}")
    out.write(_bar("vacuum", len(_TABLES), len(_TABLES), began) + "\n")


def _database(out: TextIO) -> None:
    """Connect; if the database named by DATABASE_URL does not exist yet, create it."""
    from django.db import OperationalError, connection

    from devtools.bootstrap import ensure_database

    try:
        connection.ensure_connection()
    except OperationalError:
        url = os.environ.get("DATABASE_URL")
        if not url or not ensure_database(url):
            raise
        out.write(f"Created database {connection.settings_dict['NAME']}.\n")
        connection.ensure_connection()


def _fixtures(*, orders: int, coupons: int, hours: float) -> dict[str, Any]:
    """The few rows made through the ORM: a store, products, a client, two campaigns."""
    from django.db import connection, transaction
    from django.utils import timezone

    from coupons import services as coupons_services
    from coupons.models import Campaign
    from shop.models import ApiClient, Product, Store

    now = timezone.now()
    start = now - timedelta(hours=hours)
    with transaction.atomic():
        store, _ = Store.objects.get_or_create(slug="volume", defaults={"name": "Volume"})
        products = [
            Product.objects.update_or_create(
                sku=f"VOL-{n:04d}",
                defaults={
                    "name": f"Volume product {n}",
                    "store": store,
                    "price": 1800 + 100 * n,
                    "stock": 100_000_000,
                    "stock_total": 100_000_000,
                },
            )[0]
            for n in range(1, PRODUCTS + 1)
        ]
        client, _ = ApiClient.objects.get_or_create(
            name="volume-chatbot", defaults={"webhook_secret": "volume-" + "0" * 32}
        )
        terms = {
            "status": Campaign.Status.ACTIVE,
            "starts_at": start,
            "ends_at": now + timedelta(hours=3),
            "coupon_valid_until": now + timedelta(days=7),
            "max_discount": 2500,
        }
        campaigns = {}
        for slug, name in [
            ("volume-main", "Volume: main campaign"),
            ("volume-side", "Volume: side campaign"),
        ]:
            # The coupon total is set with the slices once the coupons are in (_COUNTERS).
            if Campaign.objects.filter(slug=slug).update(name=name, **terms) == 0:
                coupons_services.campaign_seed(
                    slug=slug,
                    name=name,
                    coupons_total=coupons + 1000,
                    budget_total=10**13,
                    **terms,
                )
            campaigns[slug] = Campaign.objects.get(slug=slug)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(max(id), 0) FROM coupons_coupon")
        coupon_base = cursor.fetchone()[0]
        cursor.execute("SELECT COALESCE(max(id), 0) FROM orders_order")
        order_base = cursor.fetchone()[0]
    span = hours * 3600 - 60  # the newest order a minute ago
    return {
        "orders": orders,
        "coupons": coupons,
        "waiting": orders * 3 // 100,
        "reserved": orders * 2 // 100,
        "coupon_base": coupon_base,
        "order_base": order_base,
        "main": campaigns["volume-main"].pk,
        "side": campaigns["volume-side"].pk,
        "client": client.pk,
        "start": start,
        "step": span / orders,
        "valid_until": now + timedelta(days=7),
        "products": PRODUCTS,
        "product_ids": [p.pk for p in products],
        "product_skus": [p.sku for p in products],
        "product_prices": [p.price for p in products],
    }


def _fill(
    cursor: CursorWrapper,
    out: TextIO,
    label: str,
    total: int,
    *,
    chunk: int,
    steps: list[str],
    params: dict[str, Any],
) -> None:
    """`total` rows, `chunk` at a time, each chunk one statement: the steps as data-modifying
    CTEs over `vol_src` (_SOURCE, computed once per chunk where a step reads it)."""
    ctes = [f"vol_src AS MATERIALIZED ({_SOURCE})"] if "vol_src" in "".join(steps) else []
    ctes += [f"step_{n} AS ({sql})" for n, sql in enumerate(steps[:-1])]
    statement = ("WITH " + ",\n".join(ctes) + "\n" if ctes else "") + steps[-1]
    began = time.monotonic()
    done = 0
    out.write(_bar(label, done, total, began))
    out.flush()
    while done < total:
        hi = min(total, done + chunk)
        cursor.execute(statement, {**params, "lo": done + 1, "hi": hi})
        done = hi
        out.write(_bar(label, done, total, began))
        out.flush()
    out.write("\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.seed_volume",
        description=(
            "Create (if missing), migrate and fill the database named by DATABASE_URL with "
            "--orders orders and --coupons coupons of a nine-hour campaign, by INSERT ... "
            "SELECT generate_series in chunks, with a progress bar. For a fresh, throwaway "
            "database."
        ),
    )
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--coupons", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=100_000, help="Rows per statement.")
    parser.add_argument("--hours", type=float, default=9.0, help="Campaign so far.")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    try:
        seed(
            orders=args.orders,
            coupons=args.coupons,
            chunk=args.chunk,
            hours=args.hours,
            out=sys.stdout,
        )
    except SeedRefused as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
