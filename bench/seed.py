"""The benchmark's database: created, migrated and emptied at the start of every run, the
campaign and catalogue it sells, and fast bulk rows (coupons, waiting orders) in SQL.

Bulk rows are written with one INSERT ... SELECT generate_series per chunk. The column list
comes from the Django models: a column the SQL does not name gets its field's default, so
a column added to the product later does not break the benchmark (one without a default
stops it with a clear error).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis

from bench.stack import BROKER_URL, REDIS_URL

APPS_TRUNCATED = ("shop", "coupons", "orders", "bench_floor")
PRICE = 3000  # fen: above the coupon's 2,500, so every order pays 500 through the gateway
MAX_DISCOUNT = 2500
SKUS = ("BENCH-A", "BENCH-B", "BENCH-C", "BENCH-D")
STOCK = 50_000_000
MAIN_SLUG = "bench-burst"
SCALE_SLUG = "bench-scale"
CAMPAIGN_COUPONS = 20_000_000
SQL = tuple[str, list[Any]]


@dataclass(frozen=True)
class Fixtures:
    client_id: int
    api_key: str
    campaign_id: int
    scale_campaign_id: int
    product_ids: tuple[int, ...]


def prepare_database(env: dict[str, str]) -> None:
    """Create `campaign_bench` if missing, set Django up in this process (bench.settings,
    from `env`) and migrate (the project's apps and the floor)."""
    import django
    from django.core.management import call_command

    from devtools.bootstrap import ensure_database

    ensure_database(env["DATABASE_URL"])
    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


def autovacuum_on() -> bool:
    """Production runs PostgreSQL with autovacuum on (its default), and the pipeline's tables
    are vacuumed after a fixed number of changes (orders.migrations.0007): without it, every
    scan of a line's partial index walks the dead entries of the orders already moved on, and
    the run measures that. A CI machine may keep it off; the run turns it on, server-wide,
    and `autovacuum_restore` puts the setting back. True when it was off."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        if cursor.fetchone()[0] == "on":
            return False
        cursor.execute("ALTER SYSTEM SET autovacuum = on")
        cursor.execute("SELECT pg_reload_conf()")
    return True


def autovacuum_restore() -> None:
    """Back to the server's own setting (its configuration files) after `autovacuum_on`."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ALTER SYSTEM RESET autovacuum")
        cursor.execute("SELECT pg_reload_conf()")


def reset() -> None:
    """Empty this run's Redis DBs and every table of the benchmark's apps."""
    from django.apps import apps
    from django.db import connection

    redis.Redis.from_url(REDIS_URL).flushdb()
    redis.Redis.from_url(BROKER_URL).flushdb()
    tables = [
        model._meta.db_table
        for label in APPS_TRUNCATED
        for model in apps.get_app_config(label).get_models()
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def create_fixtures() -> Fixtures:
    """A store, four products with ample stock, the burst campaign, the scale probe's own
    campaign, and the `bench` client with a key from `manage.py create_api_key`."""
    import io

    from django.core.management import call_command
    from django.utils import timezone

    from coupons import services as coupons_services
    from shop.models import ApiClient, Product, Store

    now = timezone.now()
    store = Store.objects.create(slug="bench-store", name="Bench store")
    products = [
        Product.objects.create(
            sku=sku, name=sku, store=store, price=PRICE, stock=STOCK, stock_total=STOCK
        )
        for sku in SKUS
    ]
    campaigns = [
        coupons_services.campaign_seed(
            slug=slug,
            name=slug,
            starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(days=2),
            coupon_valid_until=now + timedelta(days=2),
            max_discount=MAX_DISCOUNT,
            per_customer_limit=1,
            coupons_total=CAMPAIGN_COUPONS,
            budget_total=MAX_DISCOUNT * CAMPAIGN_COUPONS,
        )
        for slug in (MAIN_SLUG, SCALE_SLUG)
    ]
    printed = io.StringIO()
    call_command(
        "create_api_key",
        "bench",
        label="campaign-burst benchmark",
        stdout=printed,
        stderr=io.StringIO(),
    )
    api_key = printed.getvalue()
    client = ApiClient.objects.get(name="bench")
    return Fixtures(
        client_id=client.pk,
        api_key=api_key.strip(),
        campaign_id=campaigns[0].pk,
        scale_campaign_id=campaigns[1].pk,
        product_ids=tuple(p.pk for p in products),
    )


def insert_select(model: Any, values: dict[str, SQL], source: SQL) -> SQL:
    """`INSERT INTO <model> (...) SELECT ... FROM <source>`: every concrete column gets the
    SQL given for it, else its field's default, else NULL where allowed."""
    from django.db import connection, models

    columns: list[str] = []
    select: list[str] = []
    params: list[Any] = []
    for f in model._meta.concrete_fields:
        if f.primary_key and isinstance(f, models.AutoField | models.BigAutoField):
            continue
        if f.column in values:
            sql, args = values[f.column]
            select.append(sql)
            params.extend(args)
        elif f.has_default():
            select.append("%s")
            params.append(f.get_db_prep_save(f.get_default(), connection))
        elif f.null:
            select.append("NULL")
        else:
            raise ValueError(f"bench/seed.py has no value for {model.__name__}.{f.column}")
        columns.append(f.column)
    # Table and columns come from the models, expressions from this module: no outside input.
    sql = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(select)} FROM {source[0]}"
    )
    return sql, params + source[1]


def _coupon_values(campaign_id: int, client_id: int, prefix: str, decline_every: int) -> dict:
    from coupons.models import Campaign

    valid_until = Campaign.objects.values_list("coupon_valid_until", flat=True).get(pk=campaign_id)
    customer = (
        f"CASE WHEN %s > 0 AND g %% %s = 0 THEN 'decline-{prefix}-' ELSE '{prefix}-' END || g"
    )
    return {
        "code": ("'SEED' || lpad(g::text, 10, '0')", []),
        "campaign_id": ("%s", [campaign_id]),
        "client_id": ("%s", [client_id]),
        "customer_id": (customer, [decline_every, decline_every or 1]),
        "slot": ("1", []),
        "status": ("'issued'", []),
        "max_discount": ("%s", [MAX_DISCOUNT]),
        "currency": ("'CNY'", []),
        "valid_until": ("%s", [valid_until]),
        "idempotency_key": ("'seed-' || g", []),
        "created_at": ("now()", []),
        "updated_at": ("now()", []),
    }


def seed_coupons(
    *, campaign_id: int, client_id: int, start: int, count: int, decline_every: int
) -> None:
    """Issue coupons numbered start..start+count-1 straight in the database, as if claimed:
    customer `s-<n>` (or `decline-s-<n>`), code `SEED<n>`; the campaign's counter follows.
    bench/load/jobs.py derives the same customer and code from the number."""
    from django.db import connection, transaction

    from coupons import services as coupons_services
    from coupons.models import Coupon

    values = _coupon_values(campaign_id, client_id, "s", decline_every)
    sql, params = insert_select(
        Coupon, values, ("generate_series(%s::bigint, %s::bigint) AS g", [start, start + count - 1])
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        coupons_services.coupons_issued_add(campaign_id=campaign_id, count=count)


def seed_waiting_orders(
    *,
    fixtures: Fixtures,
    start: int,
    count: int,
    chunk: int = 100_000,
    progress: bool = True,
) -> None:
    """`count` orders waiting (`received`) in the scale campaign's line, each with its own
    coupon and one line, with queue tickets after the highest one the line has: what the
    database holds when that many shoppers wait. Chunks of `chunk` rows, one transaction
    each, with a progress line."""
    from django.db import connection, transaction

    from coupons import services as coupons_services
    from coupons.models import Coupon
    from orders.models import Order, OrderLine

    campaign_id, client_id = fixtures.scale_campaign_id, fixtures.client_id
    product_id, sku = fixtures.product_ids[0], SKUS[0]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(max(queue_ticket), 0) FROM orders_order WHERE campaign_id = %s",
            [campaign_id],
        )
        (last_ticket,) = cursor.fetchone()
    began = time.monotonic()
    done = 0
    while done < count:
        size = min(chunk, count - done)
        first = start + done
        coupon_sql, coupon_params = insert_select(
            Coupon,
            {
                **_coupon_values(campaign_id, client_id, "w", 0),
                "code": ("'WAIT' || lpad(g::text, 10, '0')", []),
                "idempotency_key": ("'wait-' || g", []),
            },
            (
                "generate_series(%s::bigint, %s::bigint) AS g",
                [first, first + size - 1],
            ),
        )
        order_sql, order_params = insert_select(
            Order,
            {
                "public_id": ("gen_random_uuid()", []),
                "client_id": ("%s", [client_id]),
                "customer_id": ("c.customer_id", []),
                "campaign_id": ("%s", [campaign_id]),
                "coupon_id": ("c.id", []),
                "coupon_code": ("c.code", []),
                "status": ("'received'", []),
                "subtotal": ("%s", [PRICE]),
                "discount": ("%s", [MAX_DISCOUNT]),
                "payable": ("%s", [PRICE - MAX_DISCOUNT]),
                "idempotency_key": ("'wait-' || c.customer_id", []),
                "request_hash": ("md5(c.customer_id)", []),
                "queue_ticket": (
                    "%s + split_part(c.customer_id, '-', 2)::bigint",
                    [last_ticket - start + 1],
                ),
                "created_at": ("now()", []),
                "updated_at": ("now()", []),
            },
            ("c", []),
        )
        line_sql, line_params = insert_select(
            OrderLine,
            {
                "order_id": ("o.id", []),
                "product_id": ("%s", [product_id]),
                "sku": ("%s", [sku]),
                "quantity": ("1", []),
                "unit_price": ("%s", [PRICE]),
            },
            ("o", []),
        )
        sql = (
            f"WITH c AS ({coupon_sql} RETURNING id, customer_id, code), "
            f"o AS ({order_sql} RETURNING id) {line_sql}"
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, coupon_params + order_params + line_params)
            coupons_services.coupons_issued_add(campaign_id=campaign_id, count=size)
        done += size
        if progress:
            rate = done / max(1e-6, time.monotonic() - began)
            print(
                f"    waiting orders: {done:,}/{count:,} inserted ({rate:,.0f} rows/s)",
                flush=True,
            )
    with connection.cursor() as cursor:
        for table in ("coupons_coupon", "orders_order", "orders_orderline"):
            cursor.execute(f"ANALYZE {table}")
