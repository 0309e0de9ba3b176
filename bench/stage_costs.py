"""What each pipeline stage costs per order, measured in one process against the real
PostgreSQL, Redis and the sandbox gateway (latency 0). Not the campaign benchmark (that is
`bench/` proper, issue 7): a quick per-stage figure (docs/performance.md, Measuring).

Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/campaign_bench \
       .venv/bin/python -m bench.stage_costs [orders] [--batch N] [--profile STAGE]
                                             [--intake service|wsgi]
It creates the database if missing, migrates it, and starts its own sandbox gateway. Each
stage prints its CPU per order in this process and in its PostgreSQL backend (read from
/proc). `--batch` is the reservation and settlement batch size (10 by default, what the
workers see at a few hundred orders a second; 500 shows the floor of a full batch);
`--profile reserve` prints cProfile's top functions for that stage by each thread's CPU time
(the pool threads' calls included); `--statements` counts
the statements and commits each stage sends, per order, and lists them by kind, and its Redis
commands (INFO commandstats); `--intake wsgi`
places the orders through the WSGI application instead of the service, so the difference
between the two is what Django, the middleware and DRF add per order (gunicorn's own share is
what the end-to-end run's web CPU adds to that). DEBUG is off, as in production: Django's debug
cursor would add its own SQL rendering to every statement.

The last stage delivers the callbacks the moves wrote, as the callbacks worker does (coalesced:
one POST per paid order), to a receiver of its own in another process (STAGE_COSTS_CALLBACK_PORT,
18798 by default), so its CPU per paid order is the callbacks worker's batch without the
Celery task around it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/campaign_bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ["DEBUG"] = "false"
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
# Its own sandbox gateway, on STAGE_COSTS_SANDBOX_PORT where another run holds 18799.
SANDBOX_PORT = os.environ.get("STAGE_COSTS_SANDBOX_PORT", "18799")
os.environ["PAYMENT_GATEWAY_URL"] = f"http://127.0.0.1:{SANDBOX_PORT}"
# Every order asks for callbacks, as the benchmark's do: each move writes its callback row,
# and the last stage delivers them to this process's receiver.
CALLBACK_PORT = os.environ.get("STAGE_COSTS_CALLBACK_PORT", "18798")
CALLBACK_URL = f"http://127.0.0.1:{CALLBACK_PORT}/callback"


def backend_cpu() -> float:
    """CPU seconds used so far by this connection's PostgreSQL backend (same machine)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StatementCount:
    """Every statement and commit this process sends to PostgreSQL, whatever sends it (the
    ORM, Django's cursor, psycopg's own cursor for prepared statements): psycopg's execute
    and commit, counted."""

    def __init__(self) -> None:
        import psycopg

        self.kinds: dict[str, int] = {}
        self.commits = 0
        execute, commit = psycopg.Cursor.execute, psycopg.Connection.commit
        counter = self

        def counted_execute(cursor, query, params=None, **kwargs):
            text = query if isinstance(query, str) else str(query)
            kind = " ".join(text.split())[:90]
            if kind.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
                kind = kind.rsplit(" ", 1)[0]  # one kind, whatever the savepoint's name
            counter.kinds[kind] = counter.kinds.get(kind, 0) + 1
            return execute(cursor, query, params, **kwargs)

        def counted_commit(conn):
            counter.commits += 1
            return commit(conn)

        psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
        psycopg.Connection.commit = counted_commit  # type: ignore[method-assign]

    @staticmethod
    def redis_calls() -> dict[str, int]:
        """Calls per Redis command so far (INFO commandstats; this process is the server's
        only client here), the INFO that asks not counted."""
        from infra import fast

        stats = fast.client().info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}
        calls["info"] = calls.get("info", 0) - 1
        return calls

    def report(self, label: str, count: int, redis_before: dict[str, int]) -> None:
        redis = {
            name: n - redis_before.get(name, 0)
            for name, n in self.redis_calls().items()
            if name != "info" and n > redis_before.get(name, 0)
        }
        print(
            f"{label:<28} {sum(redis.values()) / count:6.2f} Redis commands/order: "
            + ", ".join(f"{name} {n / count:.3f}" for name, n in sorted(redis.items()))
        )
        total = sum(self.kinds.values())
        print(
            f"{label:<28} {total / count:6.2f} statements/order  "
            f"{self.commits / count:5.2f} commits/order"
        )
        for kind, n in sorted(self.kinds.items(), key=lambda kv: -kv[1]):
            print(f"    {n / count:6.3f}  {kind}")
        self.kinds.clear()
        self.commits = 0


COUNTER: list[StatementCount] = []  # one when --statements asks for it


# Set while --warm-up's pipeline runs: its stages are run, not timed, printed or counted.
WARMING = threading.Event()


def timed(label: str, count: int, fn, profile: bool = False) -> None:
    if WARMING.is_set():
        fn()
        return
    import cProfile  # here: bench/profile.py shadows the profile module cProfile imports
    import pstats

    from bench.spans import measured  # here: ROOT is on sys.path once the module has run

    redis_before = [counter.redis_calls() for counter in COUNTER]
    pg = backend_cpu()
    wall, cpu = time.perf_counter(), time.process_time()
    # By each thread's CPU time, not the wall clock: a wait on PostgreSQL or the gateway is
    # not this process's cost.
    profiler = cProfile.Profile(time.thread_time) if profile else None
    in_threads: list[cProfile.Profile] = []

    def thread_profiler(*_: object) -> None:
        # Each thread started from here (the gateway's and the callbacks' pools) profiles
        # itself: cProfile alone sees the main thread only.
        in_threads.append(cProfile.Profile(time.thread_time))
        in_threads[-1].enable()

    if profiler:
        threading.setprofile(thread_profiler)
        try:
            profiler.runcall(fn)
        finally:
            threading.setprofile(None)  # type: ignore[arg-type]
    else:
        with measured(label, count):  # counted when bench.instructions runs this
            fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    pg = backend_cpu() - pg
    print(
        f"{label:<28} {count:>6} orders  {wall / count * 1000:7.3f} ms wall/order  "
        f"{cpu / count * 1000:7.3f} ms CPU/order here  {pg / count * 1000:7.3f} ms in PostgreSQL"
    )
    for counter, before in zip(COUNTER, redis_before, strict=True):
        counter.report(label, count, before)
    if profiler:
        stats = pstats.Stats(profiler)
        for each in in_threads:
            stats.add(each)
        stats.sort_stats("tottime").print_stats(45)


def web_environment() -> None:
    """config/wsgi.py's settings for gunicorn, set before the settings load (here they load
    before config.wsgi): without them each request ran a `SELECT 1` connection health check
    that gunicorn's processes do not."""
    os.environ.setdefault("DB_LOCK_TIMEOUT_MS", "2000")
    os.environ.setdefault("DB_CONN_HEALTH_CHECKS", "false")


def prepare(intake: str) -> None:
    """The database, and the web's environment when orders go through the WSGI app."""
    from devtools.bootstrap import ensure_database

    ensure_database(os.environ["DATABASE_URL"])
    if intake == "wsgi":
        web_environment()


def wsgi_poster(api_key: str):
    """A function that places one order the way the load generator does, through the WSGI
    application gunicorn would call: every middleware, DRF, the view and the 202's JSON."""
    import io
    import json

    from config.wsgi import application

    def post(coupon, sku: str) -> None:
        body = json.dumps(
            {
                "customer_id": coupon.customer_id,
                "items": [{"sku": sku, "quantity": 1}],
                "coupon_code": coupon.code,
                "callback_url": CALLBACK_URL,
            }
        ).encode()
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/api/v1/orders/",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_AUTHORIZATION": f"Bearer {api_key}",
            "HTTP_IDEMPOTENCY_KEY": f"o-{coupon.pk}",
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        statuses = []
        chunks = application(environ, lambda status, headers, *_: statuses.append(status))
        b"".join(chunks)
        if not statuses[0].startswith("202"):
            raise RuntimeError(f"order not accepted: {statuses[0]}")

    return post


def place_all(args: argparse.Namespace, coupons: list, sku: str, client_id: int) -> None:
    """Place an order for each claimed coupon, by the service or through the WSGI app."""
    from orders import services
    from shop import services as shop_services

    if args.intake == "wsgi":
        post = wsgi_poster(shop_services.api_key_issue(client_id=client_id).raw)
        timed(
            "intake (POST via WSGI)",
            len(coupons),
            profile=args.profile == "intake",
            fn=lambda: [post(c, sku) for c in coupons],
        )
        return
    timed(
        "intake (order_place)",
        len(coupons),
        profile=args.profile == "intake",
        fn=lambda: [
            services.order_place(
                client_id=client_id,
                customer_id=c.customer_id,
                items=[services.ItemIn(sku=sku, quantity=1)],
                coupon_code=c.code,
                idempotency_key=f"o-{c.pk}",
                callback_url=CALLBACK_URL,
            )
            for c in coupons
        ],
    )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("orders", type=int, nargs="?", default=2000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument(
        "--warm-up",
        type=int,
        default=0,
        metavar="ORDERS",
        help="first run the stages on this many orders, untimed: imports and first calls "
        "are then not in the figures (bench.instructions uses it)",
    )
    parser.add_argument("--profile", choices=["claim", "intake", "reserve", "settle", "callbacks"])
    parser.add_argument(
        "--statements",
        action="store_true",
        help="count each stage's statements and commits per order, and list them by kind",
    )
    parser.add_argument(
        "--intake",
        choices=["service", "wsgi"],
        default="service",
        help="place orders by calling order_place, or by POSTing them to the WSGI application "
        "in this process (Django, middleware and DRF included; no sockets, no gunicorn)",
    )
    return parser.parse_args()


def bench_campaign(count: int, *, coupons: int | None = None) -> tuple[Any, Any, Any]:
    """A fresh store, product (stock `count`), live campaign (`coupons` coupons, `count` by
    default, and budget for `count` discounts of 2,500) and API client: (product, campaign,
    client). Django is set up."""
    from django.utils import timezone

    from coupons import services as coupons_services
    from shop import services as shop_services
    from shop.models import Product, Store

    run = uuid.uuid4().hex[:8]
    store = Store.objects.create(slug=f"s-{run}", name="bench")
    product = Product.objects.create(
        sku=f"B-{run}", name="bench", store=store, price=3000, stock=count, stock_total=count
    )
    now = timezone.now()
    campaign = coupons_services.campaign_seed(
        slug=f"b-{run}",
        name="bench",
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(days=1),
        coupon_valid_until=now + timedelta(days=1),
        max_discount=2500,
        coupons_total=count if coupons is None else coupons,
        budget_total=2500 * count,
    )
    client = shop_services.api_client_create(name=f"bench-{run}")
    return product, campaign, client


def serve_receiver(port: int) -> None:
    """A chatbot's callback receiver, in a process of its own: 204 to every POST, kept alive."""
    from aiohttp import web

    async def received(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/callback", received)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def deliver_callbacks() -> None:
    """The callbacks worker's batches (callbacks_drain without its Celery task and its
    linger), until nothing is due: claim, POST concurrently, record."""
    from concurrent.futures import ThreadPoolExecutor

    from django.conf import settings

    from orders.services.callbacks import callbacks_claim_batch, callbacks_send_and_record

    with ThreadPoolExecutor(settings.PAYMENT_CONCURRENCY) as pool:
        while jobs := callbacks_claim_batch(limit=settings.CALLBACK_BATCH_SIZE):
            callbacks_send_and_record(pool, jobs)


def run_stages(args: argparse.Namespace, count: int) -> None:
    """Claim, place, reserve, settle and deliver the callbacks of `count` orders on a fresh
    campaign, each stage timed."""
    from concurrent.futures import ThreadPoolExecutor

    from django.conf import settings

    from coupons import services as coupons_services
    from orders import services
    from orders.models import CallbackDelivery
    from orders.services.settlement import _charges

    batch = args.batch
    product, campaign, client = bench_campaign(count)
    coupons = []
    timed(
        "claim (coupon_claim)",
        count,
        profile=args.profile == "claim",
        fn=lambda: coupons.extend(
            coupons_services.coupon_claim(
                client_id=client.pk,
                slug=campaign.slug,
                customer_id=f"c-{i}",
                idempotency_key=f"k-{i}",
            ).coupon
            for i in range(count)
        ),
    )
    place_all(args, coupons, product.sku, client.pk)

    def reserve() -> None:
        while services.reservations_take_batch(campaign_id=campaign.pk, limit=batch).seen:
            pass

    timed(f"reserve (batches of {batch})", count, reserve, args.profile == "reserve")

    def settle() -> None:
        with ThreadPoolExecutor(32) as pool:
            # As the worker does (payments_drain): the batch's gateway tokens in one call,
            # the charges concurrently, and each record claims the next batch.
            claimed = services.payments_claim_batch(limit=batch)
            while claimed.jobs:
                outcomes = _charges(pool, claimed.jobs)
                _, claimed = services.payments_record_and_claim(
                    list(zip(claimed.jobs, outcomes, strict=True)), limit=batch
                )

    timed(f"settle (batches of {batch})", count, settle, args.profile == "settle")
    paid = campaign.orders.filter(status="paid").count()
    print(f"paid: {paid} of {count}")
    # The paid callbacks are due at once; the passing ones (received, reserved) a moment
    # after their move, when their order's newer status supersedes them.
    time.sleep(max(0.0, settings.CALLBACK_PASSING_DELAY_SECONDS))
    timed("callbacks (deliver)", paid, deliver_callbacks, args.profile == "callbacks")
    delivered = CallbackDelivery.objects.filter(
        order__campaign=campaign, state=CallbackDelivery.State.DELIVERED
    ).count()
    print(f"callbacks delivered: {delivered} for {paid} paid orders")


def main() -> None:
    args = arguments()
    prepare(args.intake)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if args.statements:
        COUNTER.append(StatementCount())
    from infra import fast
    from orders.models import CallbackDelivery

    fast.client().flushdb()
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox_gateway",
            "--port",
            SANDBOX_PORT,
            "--latency-ms",
            "0",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    receiver = subprocess.Popen(
        [sys.executable, "-c", f"import bench.stage_costs as s; s.serve_receiver({CALLBACK_PORT})"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)
    try:
        # Deliveries an earlier run left pending (its receiver gone) would be claimed with
        # this run's: given up, so the callbacks stage POSTs this run's only.
        CallbackDelivery.objects.filter(state=CallbackDelivery.State.PENDING).update(
            state=CallbackDelivery.State.FAILED, last_error="left by an earlier stage_costs run"
        )
        if args.warm_up:
            # Imports and first calls are paid once per process, not per order: a short
            # pipeline first, unmeasured, so that a small count shows the steady cost.
            WARMING.set()
            run_stages(args, args.warm_up)
            WARMING.clear()
        run_stages(args, args.orders)
    finally:
        gateway.terminate()
        receiver.terminate()


if __name__ == "__main__":
    main()
