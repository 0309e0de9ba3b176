"""Each of orders' lifecycle tables against its one move function, on the real database: every
move the table allows is made (row, event and, for a status change, the callback row), every
other (state, target) pair of the full product is refused with nothing written.

These test the move functions alone, so each case puts its row straight into the state under
test (an UPDATE, or an unsaved row for NEW) instead of driving an order through the pipeline.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from infra.errors import InvalidTransition
from orders import selectors, services
from orders.models import (
    CANCELLABLE,
    NEW,
    ORDER_ALLOWED,
    PARKED,
    PARKING_ALLOWED,
    PAYMENT_ALLOWED,
    REFUND_ALLOWED,
    REFUNDABLE,
    CallbackDelivery,
    Order,
    OrderEvent,
    Payment,
    Refund,
    cancel_refusal,
)
from orders.services.transitions import (
    PaymentMove,
    orders_move,
    orders_park,
    payments_move,
    refund_move,
)
from shop.models import ApiClient
from tests.factories.orders import place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db

HOOK = "https://hook.example/orders"
ORDER_STATES = list(Order.Status.values)
PARKING_STATES = [*Order.Status.values, PARKED]
PAYMENT_STATES = [NEW, *Payment.Status.values]
REFUND_STATES = [NEW, *Refund.Status.values]


def an_order(client: ApiClient, status: str, *, parked: bool = False) -> Order:
    order = place(client, "c-1", [(ProductFactory(), 1)], callback_url=HOOK)
    Order.objects.filter(pk=order.pk).update(
        status=status, parked_at=timezone.now() if parked else None
    )
    return order


def locked(order: Order) -> Order:
    return selectors.orders_for_update(order_ids=[order.pk])[0]


def written(order: Order) -> tuple[list[tuple[str, str]], list[str]]:
    events = list(OrderEvent.objects.filter(order=order).values_list("source", "target"))
    callbacks = list(
        CallbackDelivery.objects.filter(order=order).values_list("order_status", flat=True)
    )
    return events, callbacks


def test_every_state_is_a_key_of_its_table() -> None:
    # given / when / then
    assert set(ORDER_ALLOWED) == set(ORDER_STATES)
    assert set(PARKING_ALLOWED) == set(PARKING_STATES)
    assert set(PAYMENT_ALLOWED) == set(PAYMENT_STATES)
    assert set(REFUND_ALLOWED) == set(REFUND_STATES)


@pytest.mark.parametrize(("source", "target"), itertools.product(ORDER_STATES, ORDER_STATES))
def test_order_moves(chatbot: ApiClient, source: str, target: str) -> None:
    # given
    order = an_order(chatbot, source)
    now = timezone.now()
    # when
    with transaction.atomic():
        if target in ORDER_ALLOWED[source]:
            orders_move([locked(order)], target, actor="test", now=now)
        else:
            with pytest.raises(InvalidTransition):
                orders_move([locked(order)], target, actor="test", now=now)
    # then
    order.refresh_from_db()
    if target in ORDER_ALLOWED[source]:
        assert order.status == target
        assert written(order) == ([(source, target)], [target])
    else:
        assert order.status == source
        assert written(order) == ([], [])


@pytest.mark.parametrize(("source", "target"), itertools.product(PARKING_STATES, PARKING_STATES))
def test_parking_moves(chatbot: ApiClient, source: str, target: str) -> None:
    # given
    parked = source == PARKED
    order = an_order(chatbot, Order.Status.RECEIVED if parked else source, parked=parked)
    now = timezone.now()
    # when
    with transaction.atomic():
        if target in PARKING_ALLOWED[source]:
            orders_park([locked(order)], target, actor="test", now=now, reason="poison")
        else:
            with pytest.raises(InvalidTransition):
                orders_park([locked(order)], target, actor="test", now=now, reason="poison")
    # then
    order.refresh_from_db()
    assert order.status == (Order.Status.RECEIVED if parked else source)
    if target in PARKING_ALLOWED[source]:
        assert (order.parked_at is not None) == (target == PARKED)
        assert written(order) == ([(source, target)], [])  # not a status: no callback
    else:
        assert (order.parked_at is not None) == parked
        assert written(order) == ([], [])


@pytest.mark.parametrize(
    ("source", "target"), itertools.product(PAYMENT_STATES, Payment.Status.values)
)
def test_payment_moves(chatbot: ApiClient, source: str, target: str) -> None:
    # given
    order = an_order(chatbot, Order.Status.RESERVED)
    payment = Payment(order=order, idempotency_key=f"order-{order.public_id}", amount=100)
    if source != NEW:
        payment.status = source
        payment.save()
    now = timezone.now()
    # when
    with transaction.atomic():
        locked(order)
        if target in PAYMENT_ALLOWED[source]:
            payments_move([PaymentMove(payment, target)], actor="test", now=now)
        else:
            with pytest.raises(InvalidTransition):
                payments_move([PaymentMove(payment, target)], actor="test", now=now)
    # then
    stored = Payment.objects.filter(order=order).values_list("status", flat=True).first()
    if target in PAYMENT_ALLOWED[source]:
        assert stored == target
        assert written(order) == ([(f"payment:{source}", f"payment:{target}")], [])
    else:
        assert stored == (None if source == NEW else source)
        assert written(order) == ([], [])


def test_a_batch_of_payment_moves_is_checked_step_by_step(chatbot: ApiClient) -> None:
    # given: a lease that ran out (pending → unknown → pending), and a payment sent twice to
    # pending in one batch (its second step starts from the pending its first left)
    order = an_order(chatbot, Order.Status.RESERVED)
    other = an_order(chatbot, Order.Status.RESERVED)
    leased = Payment.objects.create(order=order, idempotency_key="a", amount=1)
    waiting = Payment.objects.create(
        order=other, idempotency_key="b", amount=1, status=Payment.Status.RETRY
    )
    now = timezone.now()
    # when
    with transaction.atomic():
        payments_move(
            [PaymentMove(leased, Payment.Status.UNKNOWN), PaymentMove(leased, "pending")],
            actor="test",
            now=now,
        )
    with transaction.atomic(), pytest.raises(InvalidTransition):
        payments_move(
            [PaymentMove(waiting, Payment.Status.PENDING), PaymentMove(waiting, "pending")],
            actor="test",
            now=now,
        )
    # then
    assert Payment.objects.get(pk=leased.pk).status == Payment.Status.PENDING
    assert written(order)[0] == [
        ("payment:pending", "payment:unknown"),
        ("payment:unknown", "payment:pending"),
    ]
    assert Payment.objects.get(pk=waiting.pk).status == Payment.Status.RETRY
    assert written(other) == ([], [])


@pytest.mark.parametrize(
    ("source", "target"), itertools.product(REFUND_STATES, Refund.Status.values)
)
def test_refund_moves(chatbot: ApiClient, source: str, target: str) -> None:
    # given: a paid order (a refund's success moves it to refunded)
    order = an_order(chatbot, Order.Status.PAID)
    refund = Refund(order=order, idempotency_key=f"refund-{order.public_id}", amount=100)
    if source != NEW:
        refund.status = source
        refund.save()
    now = timezone.now()
    # when
    with transaction.atomic():
        if target in REFUND_ALLOWED[source]:
            refund_move(locked(order), refund, target, actor="test", now=now)
        else:
            with pytest.raises(InvalidTransition):
                refund_move(locked(order), refund, target, actor="test", now=now)
    # then
    stored = Refund.objects.filter(order=order).values_list("status", flat=True).first()
    order.refresh_from_db()
    if target not in REFUND_ALLOWED[source]:
        assert stored == (None if source == NEW else source)
        assert order.status == Order.Status.PAID
        assert written(order) == ([], [])
    elif target == Refund.Status.SUCCEEDED:
        assert stored == target
        assert order.status == Order.Status.REFUNDED
        assert written(order) == ([("paid", "refunded")], ["refunded"])
    else:
        assert stored == target
        assert order.status == Order.Status.PAID
        assert written(order) == ([(f"refund:{source}", f"refund:{target}")], [])


@pytest.mark.parametrize(
    ("status", "payment"), itertools.product(ORDER_STATES, [None, *Payment.Status.values])
)
def test_can_this_order_be_cancelled(status: str, payment: str | None) -> None:
    # given: the rule as docs/integrator-guide.md (Order statuses) and the admin state it,
    # spelled out
    unpaid = status in ("received", "reserved")
    money_at_stake = payment in ("pending", "unknown", "succeeded", "parked")
    # when
    refusal = cancel_refusal(status, payment)
    # then
    assert (refusal == "") == (unpaid and not money_at_stake)
    assert (status in CANCELLABLE) == unpaid
    assert (status in REFUNDABLE) == (status == "paid")


def test_only_the_move_functions_write_events() -> None:
    # given: every module of the apps (migrations aside)
    root = Path(__file__).resolve().parents[2]
    writes = re.compile(
        r"(?<!class )(OrderEvent|CampaignEvent)(\(|\.objects\.(create|bulk_create)\b)"
        r"|rows_insert\(\s*(OrderEvent|CampaignEvent)\b"
    )
    # when
    writers = {
        str(path.relative_to(root))
        for app in ("config", "shop", "coupons", "orders")
        for path in (root / app).rglob("*.py")
        if "migrations" not in path.parts and writes.search(path.read_text())
    }
    # then
    assert writers == {"orders/services/transitions.py", "coupons/services/campaigns.py"}


def staff_replays(client: ApiClient, count: int) -> tuple[int, int]:
    """Statements of one payments_replay and one orders_unpark over `count` orders each."""
    now = timezone.now()
    held = [an_order(client, Order.Status.RESERVED) for _ in range(count)]
    for order in held:
        Payment.objects.create(
            order=order, idempotency_key=f"order-{order.public_id}", amount=1, status="parked"
        )
    parked = [an_order(client, Order.Status.RECEIVED, parked=True) for _ in range(count)]
    with CaptureQueriesContext(connection) as replay:
        assert len(services.payments_replay(order_ids=[o.pk for o in held], actor="t")) == count
    with CaptureQueriesContext(connection) as unpark:
        assert len(services.orders_unpark(order_ids=[o.pk for o in parked], actor="t")) == count
    assert Order.objects.filter(parked_at__lte=now).count() == 0
    return len(replay), len(unpark)


def test_a_batch_moves_in_the_same_statements_whatever_its_size(chatbot: ApiClient) -> None:
    # given / when
    few = staff_replays(chatbot, 2)
    many = staff_replays(chatbot, 7)
    # then
    assert few == many
