"""The backlog page: per queue its depth (from the broker's lists), the age of its oldest
message, the work behind it and its consume rate; orders waiting per campaign and the
oldest; workers alive (Celery's inspect); the rate limits in force; dead work with its
last error."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from config.celery import app
from orders import dashboard, services, waiting_line
from orders.dashboard import common as dashboard_common
from orders.dashboard import queues as dashboard_queues
from orders.gateway.client import ChargeOutcome
from orders.models import CallbackDelivery, Order, Payment
from shop import services as shop_services
from tests.admin.conftest import Scene, charge, figures
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.waiting import wait_until

if TYPE_CHECKING:
    from django.test import Client

    from shop.models import ApiClient

pytestmark = pytest.mark.django_db

BACKLOG = "/admin/orders/order/backlog/"


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> redis.Redis:
    """The page's broker connection, pointed at the tests' flushed Redis database, so that
    the messages a test puts in a queue never reach a real worker."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    monkeypatch.setattr(dashboard_queues, "_broker", lambda: client)
    return client


def message(task: str, task_id: str, **headers: object) -> str:
    """A Celery message as kombu stores it in a Redis list."""
    return json.dumps(
        {
            "body": base64.b64encode(b"[[], {}, {}]").decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"task": task, "id": task_id, **headers},
            "properties": {"correlation_id": task_id, "delivery_tag": task_id},
        }
    )


def test_queues_show_depth_oldest_message_and_the_work_behind_them(
    viewer: Client, scene: Scene, broker: redis.Redis
) -> None:
    # given: three nudges wait in reservations, the oldest stamped 90 s ago; one in payments
    published = time.time() - 90
    broker.lpush("reservations", message("orders.reserve_orders", "t-old", published_at=published))
    broker.lpush("reservations", message("orders.reserve_orders", "t-2"), message("x", "t-3"))
    broker.lpush("payments", message("orders.settle_payments", "t-pay"))
    # when
    shown = figures(viewer.get(BACKLOG))
    # then
    assert shown["queue-reservations-messages"] == "3"
    # 1 min 30 s, and the seconds the page took to answer on a busy machine
    assert re.fullmatch(r"1 min 3[0-4] s", shown["queue-reservations-age"])
    assert shown["queue-payments-messages"] == "1"
    assert shown["queue-payments-age"].startswith("≥ ")  # first seen by this page
    assert shown["queue-callbacks-messages"] == "0"
    assert shown["queue-maintenance-messages"] == "0"
    assert shown["queue-reservations-waiting"] == "2"  # c8 and c9
    assert shown["queue-payments-waiting"] == "2"  # c5 and c6 hold, to be charged
    assert shown["queue-reservations-drain"] == "not draining"


def test_consume_rates_and_time_to_drain(
    viewer: Client, scene: Scene, broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: 6 orders left the campaign's line two seconds ago (the fast state's counter, fed
    # by the reservation worker); 4 payments were settled in the last minute. The line's clock
    # stands still from here: the rate is measured over whole seconds, and a second ending
    # between the page and the check below would change it.
    now = time.time()
    with monkeypatch.context() as m:
        m.setattr(waiting_line, "time", SimpleNamespace(time=lambda: now - 2))
        waiting_line.tickets_done(scene.campaign.pk, 6)
    monkeypatch.setattr(waiting_line, "time", SimpleNamespace(time=lambda: now))
    # when
    shown = figures(viewer.get(BACKLOG))
    # then
    rate = waiting_line.drain_rate(scene.campaign.pk)
    assert rate > 0
    assert shown["queue-reservations-rate"] == f"{rate:,.1f}/s"
    assert shown["queue-payments-rate"] == f"{4 / 60:,.1f}/s"  # 3 paid and 1 declined


def test_lines_per_campaign_with_the_oldest_order(
    viewer: Client, chatbot: ApiClient, scene: Scene
) -> None:
    # given: a second campaign with one order waiting and one parked
    autumn = CampaignFactory(slug="autumn")
    first = place(chatbot, "d1", [(scene.tea, 1)], coupon=claim(chatbot, autumn, "d1"))
    poison = place(chatbot, "d2", [(scene.tea, 1)], coupon=claim(chatbot, autumn, "d2"))
    services.order_park(order_id=poison.pk, reason="ValueError: bad line")
    Order.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(minutes=3))
    # when
    shown = figures(viewer.get(BACKLOG))
    # then
    assert (shown["line-spring-waiting"], shown["line-spring-reserved"]) == ("2", "2")
    assert (shown["line-autumn-waiting"], shown["line-autumn-parked"]) == ("1", "1")
    assert shown["line-autumn-oldest"].startswith("3 min")
    assert shown["queue-reservations-waiting"] == "3"
    assert shown["parked-orders"] == "1"


def test_dead_work_with_its_last_error(viewer: Client, scene: Scene, monkeypatch) -> None:
    # given: c5's payment gave up after PAYMENT_MAX_ATTEMPTS unknown outcomes; a callback
    # gave up too
    order = scene.orders["c5"]
    for _ in range(settings.PAYMENT_MAX_ATTEMPTS):
        Payment.objects.filter(order=order).update(next_attempt_at=timezone.now())
        charge({order.pk: ChargeOutcome(kind="unknown", error="HTTP 503 gateway down")})
    delivery = CallbackDelivery.objects.create(
        order=order, url="https://bot.example/cb", order_status="reserved", payload={}
    )
    CallbackDelivery.objects.filter(pk=delivery.pk).update(
        state=CallbackDelivery.State.FAILED, last_error="HTTP 502 from the chatbot"
    )
    # when
    response = viewer.get(BACKLOG)
    # then
    shown = figures(response)
    html = response.content.decode()
    assert Payment.objects.get(order=order).status == Payment.Status.PARKED
    assert (shown["parked-payments"], shown["failed-callbacks"]) == ("1", "1")
    assert "HTTP 503 gateway down" in html
    assert "HTTP 502 from the chatbot" in html
    assert shown["queue-payments-waiting"] == "1"  # c6 only: a parked payment is dead work
    assert "/backlog/replay/payments/" not in html  # a viewer has no controls


def test_callbacks_pending_with_the_oldest_status_change_among_them(
    viewer: Client, scene: Scene
) -> None:
    # given: a chatbot down for a while: a callback from 25 minutes ago waits out its
    # backoff, due after a newer one that failed fewer times
    order = scene.orders["c5"]
    now = timezone.now()

    def pending(*, changed_ago: timedelta, due_in: timedelta) -> None:
        CallbackDelivery.objects.create(
            order=order,
            url="https://bot.example/cb",
            order_status="reserved",
            payload={},
            created_at=now - changed_ago,
            next_attempt_at=now + due_in,
        )

    pending(changed_ago=timedelta(minutes=25), due_in=timedelta(minutes=40))
    pending(changed_ago=timedelta(minutes=2), due_in=timedelta(0))
    delivered = CallbackDelivery.objects.create(
        order=order, url="https://bot.example/cb", order_status="reserved", payload={}
    )
    CallbackDelivery.objects.filter(pk=delivered.pk).update(
        state=CallbackDelivery.State.DELIVERED, created_at=now - timedelta(hours=3)
    )
    # when
    shown = figures(viewer.get(BACKLOG))
    # then: both pending are counted, and the age is the oldest change's, not the first due
    assert shown["callbacks-pending"] == "2"
    assert shown["callbacks-oldest"].startswith("25 min")
    assert shown["queue-callbacks-waiting"] == "2"


def test_rate_limits_in_force_and_where_they_come_from(viewer: Client, db: None) -> None:
    # given
    shop_services.rate_limit_set(scope="gateway", per_second=250, burst=20, actor="staff:ann")
    # when
    response = viewer.get(BACKLOG)
    # then
    shown = figures(response)
    assert shown["limit-gateway"] == "250/s, burst 20"
    assert shown["limit-callbacks"] == "unlimited, burst 1"  # the test settings' default
    assert "staff:ann" in response.content.decode()


def test_workers_alive_and_the_queues_they_consume(
    viewer: Client, db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: Celery's inspect answers for two workers
    class Inspect:
        def active_queues(self) -> dict[str, list[dict[str, str]]]:
            return {
                "payments@box": [{"name": "payments"}],
                "reservations@box": [{"name": "reservations"}, {"name": "maintenance"}],
            }

    monkeypatch.setattr(app.control, "inspect", lambda timeout: Inspect())
    dashboard.workers_ask()
    # when
    response = viewer.get(BACKLOG)
    # then
    html = response.content.decode()
    assert "reservations@box" in html
    assert "maintenance, reservations" in html
    assert "payments@box" in html


def test_workers_are_asked_in_the_background(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    class Inspect:
        def active_queues(self) -> dict[str, list[dict[str, str]]]:
            return {"callbacks@box": [{"name": "callbacks"}]}

    monkeypatch.setattr(app.control, "inspect", lambda timeout: Inspect())
    monkeypatch.setattr(dashboard_common, "BACKGROUND", True)
    # when
    first = dashboard.workers_alive()
    wait_until(
        lambda: dashboard.workers_alive().asked_at is not None,
        timeout=5,
        what="the background ask to keep the workers' answer",
    )
    second = dashboard.workers_alive()
    # then
    assert first.asked_at is None  # the page did not wait for the workers
    assert [w.name for w in second.workers] == ["callbacks@box"]


def test_the_fragment_is_the_refreshed_part(viewer: Client, db: None) -> None:
    response = viewer.get(BACKLOG, {"fragment": "1"})
    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert "queue-reservations-messages" in response.content.decode()


def test_requests_shed_by_the_web_front_door_are_shown(viewer: Client, scene: Scene) -> None:
    # given: the web workers reported refusals twice this minute
    from infra import fast  # noqa: PLC0415

    fast.shed_record(7)
    fast.shed_record(5)
    # when
    shown = figures(viewer.get(BACKLOG))
    # then
    assert shown["shed-recent"] == "12"
    assert shown["shed-total"] == "12"
