"""One POST per order carries its latest state when several are pending (API.md), and every
terminal status is still delivered, in the order it happened."""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.utils import timezone

from orders.models import CallbackDelivery, Order
from orders.services.callbacks import callbacks_claim_batch
from orders.services.transitions import order_move
from tests.factories.orders import place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db

HOOK = "https://chatbot.example/hook"
S = Order.Status


def moved(order: Order, *statuses: str) -> Order:
    for status in statuses:
        with transaction.atomic():
            locked = Order.objects.select_for_update().get(pk=order.pk)
            order_move(locked, status, actor="test", now=timezone.now())
    return Order.objects.get(pk=order.pk)


def sent_statuses(limit: int = 10) -> list[str]:
    return [json.loads(job.body)["status"] for job in callbacks_claim_batch(limit=limit)]


def test_a_passing_status_pending_beside_a_newer_one_is_superseded(chatbot) -> None:
    # given: reserved and paid both waiting to be announced
    order = moved(place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=HOOK), S.RESERVED)
    moved(order, S.PAID)
    # when
    statuses = sent_statuses()
    # then: one POST, with the latest state; the other is recorded as superseded
    assert statuses == ["paid"]
    states = dict(CallbackDelivery.objects.values_list("order_status", "state"))
    assert states == {"reserved": "superseded", "paid": "pending"}


def test_a_status_alone_is_sent_as_it_is(chatbot) -> None:
    moved(place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=HOOK), S.RESERVED)
    assert sent_statuses() == ["reserved"]
    assert not CallbackDelivery.objects.filter(state="superseded").exists()


def test_a_terminal_status_is_never_superseded(chatbot) -> None:
    # given: paid and then refunded, both pending
    order = moved(place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=HOOK), S.RESERVED)
    CallbackDelivery.objects.all().delete()
    moved(order, S.PAID, S.REFUNDED)
    # when: claimed twice, as a worker would after delivering the first
    first = sent_statuses()
    CallbackDelivery.objects.filter(order_status="paid").update(state="delivered")
    second = sent_statuses()
    # then: both terminal statuses go out, in the order they happened
    assert (first, second) == (["paid"], ["refunded"])
