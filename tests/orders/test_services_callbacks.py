"""One POST per order carries its latest state when several are pending (API.md), and every
terminal status is still delivered, in the order it happened."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orders.models import CallbackDelivery, Order
from orders.services.callbacks import CallbackJob, callbacks_claim_batch, callbacks_record
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


def delay_ran_out() -> None:
    """As if CALLBACK_PASSING_DELAY_SECONDS had passed: every pending delivery is due."""
    CallbackDelivery.objects.filter(state="pending").update(next_attempt_at=timezone.now())


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


def test_a_status_alone_is_sent_as_it_is_once_its_delay_ran_out(chatbot) -> None:
    # given: a reserved order; a passing status waits a moment for its successor
    moved(place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=HOOK), S.RESERVED)
    (delivery,) = CallbackDelivery.objects.all()
    delay = delivery.next_attempt_at - delivery.created_at
    assert delay == timedelta(seconds=settings.CALLBACK_PASSING_DELAY_SECONDS) > timedelta(0)
    assert sent_statuses() == []
    # when: nothing followed it in that time
    delay_ran_out()
    # then: it goes out as it is
    assert sent_statuses() == ["reserved"]
    assert not CallbackDelivery.objects.filter(state="superseded").exists()


def test_a_terminal_status_is_due_at_once(chatbot) -> None:
    # given: an order that went on to paid after its reserved callback went out
    order = moved(place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=HOOK), S.RESERVED)
    delay_ran_out()
    assert sent_statuses() == ["reserved"]
    CallbackDelivery.objects.update(state="delivered")
    # when
    moved(order, S.PAID)
    # then: paid is claimed at once, with no delay of its own
    paid = CallbackDelivery.objects.get(order_status="paid")
    assert paid.next_attempt_at == paid.created_at
    assert sent_statuses() == ["paid"]


def test_a_successor_that_comes_within_the_delay_supersedes_at_once(chatbot) -> None:
    # given: a reserved callback waiting out its delay
    order = moved(place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=HOOK), S.RESERVED)
    assert sent_statuses() == []
    # when: the order is paid within that time
    moved(order, S.PAID)
    # then: paid goes out now, not after the delay, and reserved never does
    assert sent_statuses() == ["paid"]
    states = dict(CallbackDelivery.objects.values_list("order_status", "state"))
    assert states == {"reserved": "superseded", "paid": "pending"}


def test_the_delay_is_a_setting(chatbot, settings) -> None:
    settings.CALLBACK_PASSING_DELAY_SECONDS = 0
    moved(place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=HOOK), S.RESERVED)
    assert sent_statuses() == ["reserved"]


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


# --- What a POST's outcome does to its delivery (callbacks_record) --------------------------


def claimed_one(chatbot) -> CallbackJob:
    moved(place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=HOOK), S.RESERVED)
    delay_ran_out()
    (job,) = callbacks_claim_batch(limit=10)
    return job


def test_a_claim_leases_the_delivery_and_carries_what_the_post_needs(chatbot) -> None:
    # given
    order = moved(place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=HOOK), S.RESERVED)
    delay_ran_out()
    before = timezone.now()
    # when
    (job,) = callbacks_claim_batch(limit=10)
    # then: the attempt is counted, the lease runs past a POST's time-out, the body is the
    # order document signed with the client's secret
    delivery = CallbackDelivery.objects.get()
    assert (job.delivery_id, job.attempt, delivery.attempts) == (delivery.pk, 1, 1)
    assert delivery.next_attempt_at > before + timedelta(seconds=settings.CALLBACK_TIMEOUT)
    assert (job.client_id, job.url, job.secret) == (chatbot.pk, HOOK, chatbot.webhook_secret)
    assert json.loads(job.body)["id"] == str(order.public_id)
    assert b": " not in job.body  # compact, as signed
    # and a leased delivery is not claimed again
    assert callbacks_claim_batch(limit=10) == []


def test_a_delivered_post_closes_its_delivery(chatbot) -> None:
    job = claimed_one(chatbot)
    callbacks_record([(job, "")])
    delivery = CallbackDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("delivered", 1, "")
    assert delivery.delivered_at is not None


def test_a_failed_post_is_retried_later_with_backoff(chatbot) -> None:
    job = claimed_one(chatbot)
    before = timezone.now()
    callbacks_record([(job, "HTTP 502")])
    delivery = CallbackDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("pending", 1, "HTTP 502")
    # 2 ** attempts seconds, jittered down to half
    assert before + timedelta(seconds=0.9) <= delivery.next_attempt_at
    assert delivery.next_attempt_at <= timezone.now() + timedelta(seconds=2)


def test_the_last_allowed_attempt_failing_gives_up(chatbot, settings) -> None:
    settings.CALLBACK_MAX_ATTEMPTS = 1
    job = claimed_one(chatbot)
    callbacks_record([(job, "HTTP 500")])
    delivery = CallbackDelivery.objects.get()
    assert (delivery.state, delivery.last_error) == ("failed", "HTTP 500")


def test_a_post_held_back_by_the_rate_limit_is_not_counted_as_an_attempt(chatbot) -> None:
    # given: a delivery that failed once, then claimed again and held back by the limit
    job = claimed_one(chatbot)
    callbacks_record([(job, "HTTP 502")])
    CallbackDelivery.objects.update(next_attempt_at=timezone.now())
    (again,) = callbacks_claim_batch(limit=10)
    before = timezone.now()
    # when
    callbacks_record([], unsent=[(again, 3.0)])
    # then: the attempt is given back, the wait is the limit's, the last error is kept
    delivery = CallbackDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("pending", 1, "HTTP 502")
    assert before + timedelta(seconds=3) <= delivery.next_attempt_at
    assert delivery.next_attempt_at <= timezone.now() + timedelta(seconds=3)


def test_an_outcome_for_an_attempt_that_was_claimed_again_is_dropped(chatbot) -> None:
    # given: the lease ran out and another worker claimed the delivery again
    stale = claimed_one(chatbot)
    CallbackDelivery.objects.update(next_attempt_at=timezone.now())
    (fresh,) = callbacks_claim_batch(limit=10)
    # when: the first worker's late outcome arrives
    callbacks_record([(stale, "")])
    # then: it changes nothing; the second attempt's outcome is the one written
    delivery = CallbackDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("pending", 2)
    callbacks_record([(fresh, "")])
    assert CallbackDelivery.objects.get().state == "delivered"
