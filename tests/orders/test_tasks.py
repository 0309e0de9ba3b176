"""Each task delivered twice changes nothing the second time: a message is a nudge, and the
worker does only what is still due. Tasks are called directly, in this process."""

from __future__ import annotations

import json

import psycopg
import pytest
import redis
from celery.signals import task_prerun
from django.conf import settings
from django.db import OperationalError, connection

from coupons.models import Campaign, CouponSlice
from orders.models import CallbackDelivery, Order, OrderEvent, Payment
from orders.services import nudges
from orders.tasks import (
    deliver_callbacks_task,
    reserve_orders_task,
    settle_payments_task,
    sweep_task,
)
from shop.models import Product
from tests.conftest import database_url_of_tests
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory
from tests.pipeline import ledger

pytestmark = pytest.mark.django_db


def snapshot() -> tuple:
    return (
        sorted(Order.objects.values_list("id", "status", "reason")),
        sorted(Product.objects.values_list("id", "stock")),
        sorted(Campaign.objects.values_list("id", "budget_held", "budget_spent")),
        sorted(CouponSlice.objects.values_list("campaign_id", "number", "issued", "cap")),
        sorted(Payment.objects.values_list("order_id", "status", "attempts")),
        OrderEvent.objects.count(),
        CallbackDelivery.objects.count(),
    )


def test_every_task_twice_is_the_same_as_once(chatbot, gateway) -> None:
    # given: a paying order, a declined one and one without stock, all with callbacks
    campaign = CampaignFactory(budget_total=100_000)
    tea = ProductFactory(price=3000, stock=2)
    hook = "http://127.0.0.1:9/unreachable"  # deliveries fail and are retried later
    for customer in ("c-1", "decline-2", "c-3"):
        place(
            chatbot,
            customer,
            [(tea, 1)],
            coupon=claim(chatbot, campaign, customer),
            callback_url=hook,
        )
    # when / then
    for task, args in [
        (reserve_orders_task, (campaign.pk,)),
        (settle_payments_task, ()),
        (deliver_callbacks_task, ()),
        (sweep_task, ()),
    ]:
        task(*args)
        once = snapshot()
        task(*args)
        assert snapshot() == once, f"{task.name} changed state when delivered twice"
    statuses = dict(Order.objects.values_list("customer_id", "status"))
    assert statuses == {"c-1": "paid", "decline-2": "payment_failed", "c-3": "rejected"}
    assert sorted(c["status"] for c in ledger(gateway)["charges"]) == ["declined", "succeeded"]


def test_a_stale_nudge_for_an_unknown_campaign_does_nothing(chatbot) -> None:
    # given
    before = snapshot()
    # when
    reserve_orders_task(987654)
    settle_payments_task()
    # then
    assert snapshot() == before


@pytest.mark.django_db(transaction=True)
def test_a_task_never_starts_on_a_connection_the_database_dropped() -> None:
    # given: PostgreSQL dropped this process's connection (restart, failover, terminate) and
    # a query outside any transaction found out; nothing reconnects it by itself
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with psycopg.connect(database_url_of_tests(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    for _ in range(2):
        with pytest.raises(OperationalError):
            Product.objects.count()
    # when: the next task starts (a worker sends task_prerun before each)
    task_prerun.send(sender=sweep_task, task_id="t-1", task=sweep_task, args=(), kwargs={})
    # then: it runs on a fresh connection
    assert Product.objects.count() == 0


def _sent(message: bytes) -> dict:
    """A message as kombu keeps it in the broker's list, less what differs on every publish."""
    sent = json.loads(message)
    for name in ("id", "root_id", "published_at"):
        sent["headers"].pop(name)
    for name in ("correlation_id", "delivery_tag"):
        sent["properties"].pop(name)
    return sent


@pytest.mark.parametrize(
    ("nudge", "task", "args", "queue"),
    [
        (
            lambda: nudges.nudge_reservations(7, force=True),
            reserve_orders_task,
            (7,),
            "reservations",
        ),
        (lambda: nudges.nudge_payments(force=True), settle_payments_task, (), "payments"),
        (lambda: nudges.nudge_callbacks(force=True), deliver_callbacks_task, (), "callbacks"),
    ],
    ids=["reserve", "pay", "callback"],
)
def test_a_nudge_sends_what_the_task_itself_would(nudge, task, args, queue) -> None:
    """The services publish the tasks by name (orders.tasks imports the services, so they do
    not import it back): the same message, to the same queue, as the task's own apply_async."""
    # given
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete(queue)
    # when
    nudge()
    task.apply_async(args=args)
    # then
    by_task, by_name = broker.lrange(queue, 0, -1)  # newest first
    assert _sent(by_name) == _sent(by_task)
    assert _sent(by_name)["headers"]["task"] == task.name
    assert _sent(by_name)["headers"]["ignore_result"] is True
    broker.delete(queue)
