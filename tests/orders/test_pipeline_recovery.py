"""The pipeline after its engines misbehave: a worker whose database connections were cut
works on with new ones, and a worker keeps consuming when a queue holds a message it cannot
read. Each test starts its own real worker process."""

from __future__ import annotations

import json

import pytest
import redis
from django.conf import settings
from django.db import connection

from orders.models import Order
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.pipeline import all_terminal, wait_for
from tests.waiting import wait_until

BAD_BASE64 = json.dumps(
    {"body": "!!", "properties": {"delivery_tag": "t", "body_encoding": "base64"}}
).encode()
pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


def _order(client, campaign, tea, customer: str) -> Order:
    return place(client, customer, [(tea, 1)], coupon=claim(client, campaign, customer))


def backends_alive(pids: list[int]) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids])
        (alive,) = cursor.fetchone()
    return alive > 0


def test_a_worker_reconnects_after_its_connections_are_terminated(gateway, start_worker) -> None:
    # given: a worker that has settled an order and so holds open database connections
    client, campaign, tea = ApiClientFactory(), CampaignFactory(), ProductFactory(price=3000)
    worker = start_worker()
    first = _order(client, campaign, tea, "c-1")
    wait_for(all_terminal([first.pk]), what="the first order")
    # when: PostgreSQL drops every connection but ours (a restart or failover looks the same)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        terminated = [pid for (pid, signalled) in cursor.fetchall() if signalled]
    assert terminated
    wait_until(lambda: not backends_alive(terminated), timeout=10, what="the backends to end")
    second = _order(client, campaign, tea, "c-2")
    # then: the next tasks drop the dead connections and the order is settled
    wait_for(all_terminal([second.pk]), timeout=30, what="an order after the connections died")
    assert Order.objects.get(pk=second.pk).status == Order.Status.PAID
    assert worker.poll() is None


def test_a_worker_drops_an_unreadable_message_and_goes_on(gateway, start_worker) -> None:
    # given: messages no worker can read at the head of every queue: not JSON, or JSON
    # that is no message envelope
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    for queue in ("reservations", "payments", "callbacks", "maintenance"):
        broker.lpush(
            queue, b"\x00not json\xff", b"{truncated", b"[1, 2]", b'{"body": 1}', BAD_BASE64
        )
    worker = start_worker()
    client, campaign, tea = ApiClientFactory(), CampaignFactory(), ProductFactory(price=3000)
    # when
    order = _order(client, campaign, tea, "c-1")
    # then: the worker is still there, the bad messages are gone and the order is paid
    wait_for(all_terminal([order.pk]), timeout=30, what="the order behind the bad messages")
    assert Order.objects.get(pk=order.pk).status == Order.Status.PAID
    assert worker.poll() is None
    assert broker.llen("reservations") == 0
