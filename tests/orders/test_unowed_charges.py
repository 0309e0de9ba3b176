"""No charge without its order: a charge that succeeds for an order that stopped waiting for
it (expired, cancelled) is recorded, and refunded at the gateway, never dropped. The order's
move after its claim is forced through the move functions; the gateway is the sandbox."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from bench.invariants import check_invariants
from orders import selectors, services
from orders.models import Order, OrderEvent, Payment, Refund, Reservation
from orders.services.settlement import ChargeJob, payment_attempt, refunds_unowed_settle
from orders.services.settlement import gateway as gateway_client
from orders.services.transitions import order_move
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory
from tests.pipeline import ledger

pytestmark = pytest.mark.django_db


@pytest.fixture
def charging(chatbot, gateway: httpx.Client) -> tuple[Order, ChargeJob]:
    """A reserved order whose payment the settlement worker has claimed: its charge is out."""
    tea = ProductFactory(price=3000)
    order = place(chatbot, "c-1", [(tea, 1)], coupon=claim(chatbot, CampaignFactory(), "c-1"))
    services.reservations_drain(campaign_id=order.campaign_id)
    (job,) = services.payments_claim_batch(limit=10).jobs
    return order, job


def move_away(order: Order, to: str) -> None:
    """The order ends unpaid while its charge is out, as the sweep's race once let it."""
    with transaction.atomic():
        (locked,) = selectors.orders_for_update(order_ids=[order.pk])
        services.holds_close([locked], outcome=Reservation.Outcome.RELEASED, now=timezone.now())
        order_move(locked, to, actor="test", now=timezone.now())


def moves(order: Order) -> list[tuple[str, str]]:
    events = OrderEvent.objects.filter(order=order).order_by("pk")
    return list(events.values_list("source", "target"))


@pytest.mark.parametrize("ended", [Order.Status.EXPIRED, Order.Status.CANCELLED])
def test_a_charge_that_succeeds_after_its_order_ended_is_refunded(
    charging: tuple[Order, ChargeJob], gateway: httpx.Client, ended: str
) -> None:
    # given: the order ends while its charge is out, and the charge then succeeds
    order, job = charging
    move_away(order, ended)
    outcome = payment_attempt(gateway_client(), job)
    assert outcome.kind == "succeeded"
    # when: the worker records the outcome and settles what it owes back
    counts = services.payments_record([(job, outcome)])
    settled = refunds_unowed_settle()
    # then: the charge is refunded in full at the gateway
    assert (counts["unowed"], settled) == (1, 1)
    (charge,) = ledger(gateway)["charges"]
    assert charge["id"] == outcome.charge_id
    assert charge["amount_refunded"] == charge["amount"] == order.payable
    # and: the payment's outcome and the refund are on the record; the order keeps its status
    payment = Payment.objects.get(order=order)
    assert (payment.status, payment.charge_id) == (Payment.Status.SUCCEEDED, outcome.charge_id)
    refund = Refund.objects.get(order=order)
    assert refund.status == Refund.Status.SUCCEEDED
    assert (refund.charge_id, refund.amount) == (outcome.charge_id, order.payable)
    assert refund.refund_id == ledger(gateway)["refunds"][0]["id"]
    assert Order.objects.get(pk=order.pk).status == ended
    assert moves(order)[-3:] == [
        ("payment:pending", "payment:succeeded"),
        ("refund:", "refund:pending"),
        ("refund:pending", "refund:succeeded"),
    ]
    # and: the benchmark's charge invariant holds
    assert [v for v in check_invariants(connection, ledger(gateway)) if v.check == "charges"] == []


def test_a_refund_the_worker_left_unanswered_is_settled_by_the_sweep(
    charging: tuple[Order, ChargeJob], gateway: httpx.Client
) -> None:
    # given: a charge that succeeded after its order expired, recorded, and the worker gone
    # before it asked for the refund
    order, job = charging
    move_away(order, Order.Status.EXPIRED)
    services.payments_record([(job, payment_attempt(gateway_client(), job))])
    assert Refund.objects.get(order=order).status == Refund.Status.PENDING
    # when: the sweep runs once the refund has gone untouched for a while
    stale = timezone.now() - timedelta(seconds=settings.STALE_AFTER_SECONDS + 1)
    Refund.objects.filter(order=order).update(updated_at=stale)
    report = services.pipeline_sweep()
    # then
    assert report.refunds_settled == 1
    assert Refund.objects.get(order=order).status == Refund.Status.SUCCEEDED
    (charge,) = ledger(gateway)["charges"]
    assert charge["amount_refunded"] == charge["amount"]
