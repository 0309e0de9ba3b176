"""One POST per order carries its latest state when several are pending
(docs/integrator-guide.md, Callbacks), and every
terminal status is still delivered, in the order it happened; a failed POST is retried on
a schedule that covers a day; every POST names its event, its attempt and the change's
time, and is signed with each valid secret while one is rotated."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orders.models import CallbackDelivery, Order
from orders.services.callbacks import (
    CallbackJob,
    callback_send,
    callbacks_claim_batch,
    callbacks_record,
    retry_delays,
    signature,
    signature_verify,
)
from orders.services.transitions import order_move
from shop.models import ApiClient, AuditEntry
from shop.services import webhook_secret_rotate
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


def test_a_status_being_posted_by_another_worker_is_not_superseded(chatbot) -> None:
    # given: one worker claimed reserved and is POSTing it when the order is paid
    order = moved(place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=HOOK), S.RESERVED)
    delay_ran_out()
    (in_flight,) = callbacks_claim_batch(limit=10)
    moved(order, S.PAID)
    # when: a second worker claims
    beside = sent_statuses()
    # then: paid waits until reserved is recorded, then goes out after it
    assert beside == []
    assert CallbackDelivery.objects.get(order_status="reserved").state == "pending"
    callbacks_record([(in_flight, "")])
    assert sent_statuses() == ["paid"]


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
    # CALLBACK_RETRY_BASE_SECONDS (2 s), jittered down to three quarters
    assert before + timedelta(seconds=1.5) <= delivery.next_attempt_at
    assert delivery.next_attempt_at <= timezone.now() + timedelta(seconds=2)


def test_the_retry_schedule_covers_a_day_with_the_wait_capped_at_an_hour() -> None:
    # given: the default settings (docs/integrator-guide.md, Callbacks: retried for at least
    # 24 hours)
    delays = retry_delays()
    # then: doubling from 2 s, never more than an hour apart
    assert delays[:4] == [2.0, 4.0, 8.0, 16.0]
    assert max(delays) == 3600.0
    assert delays == sorted(delays)
    # even if every wait is drawn at its shortest, the last attempt comes 24 h or more after
    # the first; one retry fewer would not cover the day
    shortest = [d * 0.75 for d in delays]
    assert sum(shortest) >= 24 * 3600 > sum(shortest[:-1])
    # and at their longest, the delivery is given up within 33 hours
    assert sum(delays) < 33 * 3600
    assert len(delays) + 1 == 43  # attempts, as docs/integrator-guide.md tabulates them


def test_a_delivery_is_retried_on_schedule_until_given_up(chatbot, settings) -> None:
    # given: the schedule compressed as the pipeline tests do
    settings.CALLBACK_RETRY_BASE_SECONDS = 0.5
    settings.CALLBACK_RETRY_MAX_DELAY_SECONDS = 4.0
    settings.CALLBACK_RETRY_HOURS = 0.005  # 18 s
    delays = retry_delays()
    job = claimed_one(chatbot)
    # when: every attempt fails
    waits = []
    for attempt in range(1, len(delays) + 2):
        assert job.attempt == attempt
        before = timezone.now()
        callbacks_record([(job, "HTTP 503")])
        delivery = CallbackDelivery.objects.get()
        if delivery.state != "pending":
            break
        waits.append((delivery.next_attempt_at - before).total_seconds())
        CallbackDelivery.objects.update(next_attempt_at=timezone.now())
        (job,) = callbacks_claim_batch(limit=10)
    # then: each wait within its jitter, the last retry's failure gives it up
    assert len(waits) == len(delays) > 5
    for wait, nominal in zip(waits, delays, strict=True):
        assert nominal * 0.75 - 0.01 <= wait <= nominal + 0.01
    assert (delivery.state, delivery.attempts) == ("failed", len(delays) + 1)


def test_no_retry_hours_gives_up_at_the_first_failure(chatbot, settings) -> None:
    settings.CALLBACK_RETRY_HOURS = 0
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


# --- What each POST carries: event, attempt, time, signatures (callback_send) ---------------


class _Hook(BaseHTTPRequestHandler):
    heard: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    status = 204
    answer_size = 0  # bytes of answer body

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.heard.append((dict(self.headers), body))
        self.send_response(self.status)
        if _Hook.answer_size:
            self.send_header("Content-Length", str(_Hook.answer_size))
        self.end_headers()
        try:
            self.wfile.write(b"x" * _Hook.answer_size)
        except OSError:  # the sender stopped reading: what the size test wants
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    """A chatbot's endpoint on this machine; what it heard is in _Hook.heard."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.heard, _Hook.status, _Hook.answer_size = [], 204, 0
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def posted(chatbot, url: str) -> tuple[dict[str, str], bytes]:
    """Claim the one due delivery, POST it, record the outcome; what the endpoint heard."""
    (job,) = callbacks_claim_batch(limit=10)
    callbacks_record([(job, callback_send(job))])
    return _Hook.heard[-1]


def test_each_post_names_its_event_its_attempt_and_when_the_change_happened(
    chatbot, hook: str
) -> None:
    # given: a paid order whose endpoint refuses the first POST
    order = moved(
        place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=hook), S.RESERVED, S.PAID
    )
    _Hook.status = 503
    first, _ = posted(chatbot, hook)
    # when: it is tried again and accepted
    _Hook.status = 204
    CallbackDelivery.objects.filter(state="pending").update(next_attempt_at=timezone.now())
    second, body = posted(chatbot, hook)
    # then: the same event, a new attempt, the move's time
    delivery = CallbackDelivery.objects.get(order_status="paid")
    assert (delivery.state, delivery.attempts) == ("delivered", 2)
    assert first["X-Event-Id"] == second["X-Event-Id"] == f"evt_{delivery.pk}"
    assert first["X-Delivery-Id"] != second["X-Delivery-Id"]
    assert second["X-Event-Time"] == delivery.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert datetime.fromisoformat(second["X-Event-Time"]) == delivery.created_at
    assert json.loads(body)["id"] == str(order.public_id)
    # and another status change of the order is another event
    moved(order, S.REFUNDED)
    third, _ = posted(chatbot, hook)
    assert third["X-Event-Id"] == f"evt_{CallbackDelivery.objects.latest('id').pk}"
    assert third["X-Event-Id"] != second["X-Event-Id"]


def test_a_long_answer_is_read_only_so_far_and_its_status_still_counts(chatbot, hook: str) -> None:
    # given: an endpoint that accepts with 8 MiB of body, far over what a sender reads
    _Hook.status, _Hook.answer_size = 200, 8 << 20
    order = moved(
        place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=hook), S.RESERVED, S.PAID
    )
    # when
    posted(chatbot, hook)
    # then: delivered, and the endpoint's next POST goes through (tests/infra/test_keepalive.py
    # shows the cut connection is closed, not reused)
    assert CallbackDelivery.objects.get(order_status="paid").state == "delivered"
    _Hook.answer_size = 0
    moved(order, S.REFUNDED)
    posted(chatbot, hook)
    assert CallbackDelivery.objects.get(order_status="refunded").state == "delivered"
    assert len(_Hook.heard) == 2


def v1_entries(header: str) -> list[str]:
    return [part.split("=", 1)[1] for part in header.split(",") if part.startswith("v1=")]


def test_a_rotated_secret_signs_beside_the_new_one_until_its_overlap_ends(
    chatbot, hook: str
) -> None:
    # given: the secret rotated with an hour's overlap
    old = chatbot.webhook_secret
    rotated = webhook_secret_rotate(client_id=chatbot.pk, overlap=timedelta(hours=1), actor="t")
    new = rotated.webhook_secret
    assert new != old
    order = moved(
        place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=hook), S.RESERVED, S.PAID
    )
    # when
    headers, body = posted(chatbot, hook)
    # then: two entries, the old first; a receiver holding either secret accepts the POST
    signed = headers["X-Signature"]
    assert len(v1_entries(signed)) == 2
    assert signed == signature(
        secret=new, body=body, timestamp=int(signed[2:].split(",")[0]), previous_secret=old
    )
    assert signature_verify(secret=old, body=body, header=signed)
    assert signature_verify(secret=new, body=body, header=signed)
    assert not signature_verify(secret="whsec-other", body=body, header=signed)
    # when: the overlap has ended
    ApiClient.objects.filter(pk=chatbot.pk).update(
        webhook_secret_previous_until=timezone.now() - timedelta(seconds=1)
    )
    moved(order, S.REFUNDED)
    headers, body = posted(chatbot, hook)
    # then: the new secret alone signs
    assert len(v1_entries(headers["X-Signature"])) == 1
    assert signature_verify(secret=new, body=body, header=headers["X-Signature"])
    assert not signature_verify(secret=old, body=body, header=headers["X-Signature"])


def test_a_leaked_secret_replaced_with_no_overlap_stops_signing_at_once(chatbot, hook: str) -> None:
    old = chatbot.webhook_secret
    new = webhook_secret_rotate(client_id=chatbot.pk, overlap=timedelta(0), actor="t")
    moved(place(chatbot, "c-1", [(ProductFactory(), 1)], callback_url=hook), S.RESERVED, S.PAID)
    headers, body = posted(chatbot, hook)
    assert len(v1_entries(headers["X-Signature"])) == 1
    assert signature_verify(secret=new.webhook_secret, body=body, header=headers["X-Signature"])
    assert not signature_verify(secret=old, body=body, header=headers["X-Signature"])
    entry = AuditEntry.objects.get(action="api_client.webhook_secret_rotate")
    assert (entry.actor, entry.after) == ("t", {"previous_valid_until": None})
    assert old not in json.dumps([entry.before, entry.after])
