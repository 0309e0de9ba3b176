"""The real stack through a real PgBouncer in transaction pooling (Debian 12's 1.18): gunicorn
and Celery workers reach PostgreSQL only through it, one server connection per database
alias for all their processes, so every transaction may run where another process's ran
before. Orders go claim to paid with their callback, a cancel and a lock timeout answer; and
whatever a process left in a server session (a prepared statement, a SET, a cursor, a temp
table, a LISTEN, an advisory lock) is found on that one shared session afterwards."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections
from django.test import override_settings

from orders.models import Order
from shop import services as shop_services
from tests import pgbouncer, stack
from tests.conftest import database_url_of_tests
from tests.factories.coupons import CampaignFactory
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.pipeline import all_terminal, succeeded_charges_by_reference, wait_for

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

POOLED = {"DB_POOLER": "pgbouncer-transaction"}
# What PgBouncer itself keeps per client and sets again on whichever server it lends
# (its tracked parameters): Django sets TimeZone once per client connection.
POOLER_TRACKED = {"client_encoding", "DateStyle", "TimeZone", "standard_conforming_strings"}


@pytest.fixture(scope="module")
def pooler(django_db_setup: None, log_dir: Path) -> Iterator[pgbouncer.Pooler]:
    """One server connection per alias: every process of a tier shares the one session."""
    with pgbouncer.running(
        database=connection.settings_dict, pool_size=1, log_path=log_dir / "pgbouncer.log"
    ) as running:
        yield running


@pytest.fixture
def web(
    pooler: pgbouncer.Pooler, worker_env: dict[str, str], sandbox: httpx.Client, log_dir: Path
) -> Iterator[str]:
    """gunicorn with two processes on the web's alias; its base URL."""
    env = {
        **worker_env,
        **POOLED,
        "DATABASE_URL": pooler.url(pooler.web_db),
        # Served, not shed: two processes queue on one server connection (tests/infra/test_server.py
        # proves shedding).
        "WEB_QUEUE_TIMEOUT_MS": "10000",
        "WEB_QUEUE_TIMEOUT_BUSY_MS": "10000",
        "WEB_QUEUE_TIMEOUT_SHEDDING_MS": "10000",
    }
    url, process = stack.start_web(log_dir / "pgbouncer-gunicorn.log", env=env, workers=2)
    yield url
    stack.stop(process)


@pytest.fixture
def http(web: str) -> Iterator[httpx.Client]:
    key = shop_services.api_key_issue(client_id=ApiClientFactory().pk).raw
    with httpx.Client(base_url=web, headers={"Authorization": f"Bearer {key}"}, timeout=15) as c:
        yield c


def post(http: httpx.Client, path: str, body: dict | None = None, key: str = "") -> httpx.Response:
    return http.post(path, json=body, headers={"Idempotency-Key": key or uuid.uuid4().hex})


class _Receiver(BaseHTTPRequestHandler):
    statuses: list[tuple[str, str]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.statuses.append((body["id"], body["status"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def left_behind(pooler: pgbouncer.Pooler, alias: str) -> dict[str, object]:
    """What the alias's one server session holds beyond what the pooler itself keeps."""
    url = pooler.url(alias)
    with psycopg.connect(url, autocommit=True) as conn:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "backend": one("SELECT pg_backend_pid()"),
            "prepared": one("SELECT count(*) FROM pg_prepared_statements"),
            "cursors": one("SELECT count(*) FROM pg_cursors"),
            "listening": one("SELECT count(*) FROM pg_listening_channels()"),
            "temp tables": one(
                "SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()"
            ),
            "advisory locks": one(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            "session settings": {
                name: setting
                for name, setting in conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE source = 'session'"
                ).fetchall()
                if name not in POOLER_TRACKED
            },
        }


def test_orders_go_claim_to_paid_through_the_pooler_and_leave_no_session_state(
    pooler: pgbouncer.Pooler,
    http: httpx.Client,
    start_worker: Callable[..., object],
    gateway: httpx.Client,
) -> None:
    # given: a callback receiver, a campaign, a product the coupon does not cover
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.statuses = []
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    campaign = CampaignFactory(coupons_total=10, budget_total=1_000_000)
    tea = ProductFactory(price=3000, stock=10)
    sessions_before = {alias: left_behind(pooler, alias)["backend"] for alias in pooler.aliases}
    # when: claims and orders through the web, one of them cancelled before any worker runs
    placed = []
    for i in range(4):
        claimed = post(http, f"/api/v1/campaigns/{campaign.slug}/claims/", {"customer_id": f"c{i}"})
        assert claimed.status_code == 201, claimed.text
        body = {
            "customer_id": f"c{i}",
            "items": [{"sku": tea.sku, "quantity": 1}],
            "coupon_code": claimed.json()["code"],
            "callback_url": hook,
        }
        response = post(http, "/api/v1/orders/", body)
        assert response.status_code == 202, response.text
        placed.append(response.json()["id"])
    cancelled = post(http, f"/api/v1/orders/{placed[0]}/cancel/")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    # and the workers, every queue, through the workers' alias
    start_worker(DATABASE_URL=pooler.url(pooler.workers_db), **POOLED)
    ids = list(Order.objects.filter(public_id__in=placed).values_list("pk", flat=True))
    wait_for(all_terminal(ids), what="the orders through PgBouncer")
    paid = placed[1:]
    wait_for(
        lambda: {(i, "paid") for i in paid} <= set(_Receiver.statuses), what="the paid callbacks"
    )
    server.shutdown()
    # then: every order is where it should be, charged once, read back through the web
    answers = {i: http.get(f"/api/v1/orders/{i}/").json()["status"] for i in placed}
    assert answers == {placed[0]: "cancelled", **dict.fromkeys(paid, "paid")}
    assert succeeded_charges_by_reference(gateway) == dict.fromkeys(paid, 1)
    assert (placed[0], "paid") not in _Receiver.statuses
    # and each tier really shared one server connection, which is the session read below
    servers = pooler.admin("SHOW SERVERS")  # (type, user, database, ...) per server
    assert sorted(server[2] for server in servers) == sorted(pooler.aliases), servers
    # and nothing any process did stayed in it but the web's lock timeout, set by the pooler
    for alias, settings in (
        (pooler.workers_db, {}),
        (pooler.web_db, {"lock_timeout": str(pgbouncer.WEB_LOCK_TIMEOUT_MS)}),
    ):
        found = left_behind(pooler, alias)
        assert found == {
            "backend": sessions_before[alias],
            "prepared": 0,
            "cursors": 0,
            "listening": 0,
            "temp tables": 0,
            "advisory locks": 0,
            "session settings": settings,
        }, alias


def test_a_claim_stuck_behind_a_row_lock_answers_429_through_the_pooler(
    http: httpx.Client,
) -> None:
    # given: a session straight to PostgreSQL holds every coupon slice of the campaign
    campaign = CampaignFactory()
    path = f"/api/v1/campaigns/{campaign.slug}/claims/"
    with psycopg.connect(database_url_of_tests()) as other:
        other.execute(
            "SELECT 1 FROM coupons_couponslice WHERE campaign_id = %s FOR NO KEY UPDATE",
            [campaign.pk],
        )
        # when
        started = time.monotonic()
        stuck = post(http, path, {"customer_id": "c-1"}, key="claim-1")
        waited = time.monotonic() - started
    # then: the pooler's lock_timeout (2 s) answered, not the client's 15 s time-out
    assert stuck.status_code == 429, stuck.text
    assert stuck.json()["error"] == "overloaded"
    assert 1.5 <= waited < 10, waited
    again = post(http, path, {"customer_id": "c-1"}, key="claim-1")
    assert again.status_code == 201, again.text


def test_a_process_on_the_wrong_alias_refuses_its_connection(pooler: pgbouncer.Pooler) -> None:
    # given: a web process (2 s lock timeout) whose DATABASE_URL names the workers' alias
    def wrapper(alias: str) -> object:
        found = connections.create_connection("default")
        found.settings_dict = {
            **connection.settings_dict,
            "NAME": alias,
            "HOST": "127.0.0.1",
            "PORT": pooler.port,
            "OPTIONS": {},
        }
        return found

    with override_settings(DB_POOLER="pgbouncer-transaction", DB_LOCK_TIMEOUT_MS=2000):
        wrong, right = wrapper(pooler.workers_db), wrapper(pooler.web_db)
        try:
            # when / then: refused, and closed, so that the next use checks again
            with pytest.raises(ImproperlyConfigured, match="lock_timeout is 0 ms"):
                wrong.ensure_connection()
            assert wrong.connection is None
            # and on the web's alias it connects
            right.ensure_connection()
            assert right.connection is not None
        finally:
            wrong.close()
            right.close()


def test_a_web_host_on_the_workers_alias_is_not_ready(
    pooler: pgbouncer.Pooler, worker_env: dict[str, str], log_dir: Path
) -> None:
    # given: gunicorn (2 s lock timeout) whose DATABASE_URL names the workers' alias
    env = {**worker_env, **POOLED, "DATABASE_URL": pooler.url(pooler.workers_db)}
    url, process = stack.start_web(log_dir / "pgbouncer-gunicorn-wrong.log", env=env)
    try:
        # when
        ready = httpx.get(f"{url}/readyz", timeout=10)
    finally:
        stack.stop(process)
    # then: the load balancer's check keeps it out of rotation, and says why
    assert ready.status_code == 503, ready.text
    assert ready.json()["failed"] == ["postgres"]
    assert "lock_timeout is 0 ms" in ready.json()["checks"]["postgres"]
