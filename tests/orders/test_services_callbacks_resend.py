"""Staff resend an order's latest status (orders.services.callbacks.callbacks_resend): its
newest delivery, done with either way, goes back to pending with a fresh attempt budget, so
the worker POSTs the same event (id and time) again under a new delivery id. Over a time range
(callbacks_resend_between), only the orders whose latest change falls in the range."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from orders.models import CallbackDelivery, Order
from orders.selectors import latest_callbacks_between
from orders.services.callbacks import (
    callbacks_claim_batch,
    callbacks_record,
    callbacks_resend,
    callbacks_resend_between,
    event_id,
    rfc3339,
)
from shop.models import ApiClient
from tests.factories.orders import place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db

HOOK = "https://chatbot.example/hook"
D = CallbackDelivery.State


def an_order(chatbot: ApiClient, name: str, *, callback_url: str = HOOK) -> Order:
    return place(chatbot, name, [(ProductFactory(), 1)], callback_url=callback_url)


def delivery(order: Order, status: str, state: str, at: datetime) -> CallbackDelivery:
    """A delivery of `status` made at `at` (the change's time), already `state`."""
    row = CallbackDelivery.objects.create(
        order=order,
        url=order.callback_url,
        order_status=status,
        payload={"id": str(order.public_id), "status": status},
        state=state,
        attempts=3,
        delivered_at=at if state == D.DELIVERED else None,
        last_error="" if state == D.DELIVERED else "HTTP 503",
    )
    CallbackDelivery.objects.filter(pk=row.pk).update(created_at=at)
    return CallbackDelivery.objects.get(pk=row.pk)


def test_the_newest_delivery_goes_back_to_pending_with_a_fresh_budget(chatbot) -> None:
    # given: reserved then paid, both delivered long ago
    order = an_order(chatbot, "ann")
    then = timezone.now() - timedelta(hours=5)
    older = delivery(order, "reserved", D.DELIVERED, then)
    newest = delivery(order, "paid", D.DELIVERED, then + timedelta(seconds=3))
    before = timezone.now()
    # when
    resent = callbacks_resend(order_ids=[order.pk], actor="staff:otto")
    # then: only the latest status, due at once, its time and event kept
    assert resent == [newest.pk]
    row = CallbackDelivery.objects.get(pk=newest.pk)
    assert (row.state, row.attempts, row.delivered_at) == (D.PENDING, 0, None)
    assert row.last_error == "resent by staff:otto"
    assert before <= row.next_attempt_at <= timezone.now()
    assert row.created_at == newest.created_at
    assert CallbackDelivery.objects.get(pk=older.pk).state == D.DELIVERED


def test_a_given_up_delivery_is_resent_too(chatbot) -> None:
    order = an_order(chatbot, "ann")
    failed = delivery(order, "paid", D.FAILED, timezone.now() - timedelta(days=2))
    assert callbacks_resend(order_ids=[order.pk], actor="staff:otto") == [failed.pk]
    assert CallbackDelivery.objects.get(pk=failed.pk).state == D.PENDING


def test_one_on_its_way_or_none_at_all_is_left_alone(chatbot) -> None:
    # given: one order's latest delivery still pending, another with no callbacks
    busy = an_order(chatbot, "ann")
    delivery(busy, "reserved", D.DELIVERED, timezone.now() - timedelta(minutes=2))
    pending = delivery(busy, "paid", D.PENDING, timezone.now() - timedelta(minutes=1))
    silent = an_order(chatbot, "bob", callback_url="")
    # when
    resent = callbacks_resend(order_ids=[busy.pk, silent.pk], actor="staff:otto")
    # then
    assert resent == []
    assert CallbackDelivery.objects.get(pk=pending.pk).attempts == 3


def test_the_worker_sends_the_same_event_again_under_a_new_delivery_id(chatbot) -> None:
    # given: a delivery sent once and delivered
    order = an_order(chatbot, "ann")
    row = delivery(order, "paid", D.PENDING, timezone.now() - timedelta(hours=1))
    CallbackDelivery.objects.filter(pk=row.pk).update(attempts=0)
    (first,) = callbacks_claim_batch(limit=10)
    callbacks_record([(first, "")])
    # when
    callbacks_resend(order_ids=[order.pk], actor="staff:otto")
    (again,) = callbacks_claim_batch(limit=10)
    # then: the same row (event id), body and change time; its first attempt again (the new
    # X-Delivery-Id of each POST: tests/orders/test_pipeline_webhook_samples.py)
    assert again.delivery_id == first.delivery_id == row.pk
    assert event_id(delivery_id=again.delivery_id) == f"evt_{row.pk}"
    assert again.body == first.body
    assert rfc3339(moment=again.event_time) == rfc3339(moment=row.created_at)
    assert again.attempt == 1


def test_a_range_touches_only_orders_whose_latest_change_is_in_it(chatbot) -> None:
    # given: latest changes 3 h, 90 min and 30 min ago; one changed in the range and again later
    now = timezone.now()
    early, inside, late, moved_on = (an_order(chatbot, n) for n in ("a", "b", "c", "d"))
    delivery(early, "paid", D.DELIVERED, now - timedelta(hours=3))
    wanted = delivery(inside, "paid", D.FAILED, now - timedelta(minutes=90))
    delivery(late, "paid", D.DELIVERED, now - timedelta(minutes=30))
    delivery(moved_on, "reserved", D.DELIVERED, now - timedelta(minutes=100))
    delivery(moved_on, "paid", D.DELIVERED, now - timedelta(minutes=20))
    # when: from 2 h ago to 1 h ago
    resent = callbacks_resend_between(
        since=now - timedelta(hours=2), until=now - timedelta(hours=1), actor="staff:otto", limit=10
    )
    # then
    assert resent == [wanted.pk]
    assert list(CallbackDelivery.objects.filter(state=D.PENDING).values_list("pk", flat=True)) == [
        wanted.pk
    ]


def test_a_range_resends_at_most_its_limit_oldest_first(chatbot) -> None:
    now = timezone.now()
    rows = [
        delivery(an_order(chatbot, f"c{n}"), "paid", D.DELIVERED, now - timedelta(minutes=50 - n))
        for n in range(3)
    ]
    resent = callbacks_resend_between(
        since=now - timedelta(hours=1), until=now, actor="staff:otto", limit=2
    )
    assert resent == [rows[0].pk, rows[1].pk]


def test_a_range_is_found_among_many_deliveries_by_their_ids(chatbot) -> None:
    # given: 120 orders' deliveries, one a minute for two hours, inserted in time order as the
    # pipeline inserts them (the selector bisects their ids by time)
    now = timezone.now()
    rows = [
        delivery(an_order(chatbot, f"m{n}"), "paid", D.DELIVERED, now - timedelta(minutes=120 - n))
        for n in range(120)
    ]
    # when: from 90 to 60 minutes ago
    found = list(
        latest_callbacks_between(
            since=now - timedelta(minutes=90), until=now - timedelta(minutes=60)
        ).values_list("pk", flat=True)
    )
    # then: exactly the thirty of the range, oldest first; an empty range finds none
    assert found == [row.pk for row in rows[30:60]]
    assert not latest_callbacks_between(
        since=now + timedelta(minutes=1), until=now + timedelta(hours=1)
    ).exists()
