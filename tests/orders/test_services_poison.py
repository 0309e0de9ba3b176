"""A poison order (one whose processing always fails) never blocks its campaign's line: the
batch is retried smaller until the order is found alone, and parked for staff, who return it
to the line once the cause is fixed."""

from __future__ import annotations

from unittest import mock

import pytest

from orders import services
from orders.models import Order, OrderEvent
from orders.services import holds
from tests.factories.orders import place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db


def test_a_poison_order_is_parked_and_the_line_moves_on(chatbot) -> None:
    # given: 20 orders, the 13th of which makes every batch containing it fail
    tea = ProductFactory(stock=100)
    orders = [place(chatbot, f"c-{i}", [(tea, 1)]) for i in range(20)]
    poison = orders[12]
    real_verdict = holds._verdict

    def verdict(order: Order, *args: object, **kwargs: object) -> str:
        if order.pk == poison.pk:
            raise ValueError("a bug that only this order triggers")
        return real_verdict(order, *args, **kwargs)

    # when
    with mock.patch.object(holds, "_verdict", side_effect=verdict):
        services.reservations_drain(campaign_id=None)
    # then
    poison.refresh_from_db()
    assert poison.status == Order.Status.RECEIVED
    assert poison.parked_at is not None
    assert "ValueError" in poison.park_reason
    others = Order.objects.exclude(pk=poison.pk)
    assert set(others.values_list("status", flat=True)) == {Order.Status.RESERVED}
    assert OrderEvent.objects.filter(order=poison, target="parked").count() == 1
    # and when: staff return it after the fix
    assert services.orders_unpark(order_ids=[poison.pk], actor="staff:test") == [poison.pk]
    services.reservations_drain(campaign_id=None)
    # then
    poison.refresh_from_db()
    assert (poison.status, poison.parked_at) == (Order.Status.RESERVED, None)


def test_an_unreachable_database_parks_nothing(chatbot) -> None:
    # given
    from django.db import OperationalError  # noqa: PLC0415

    place(chatbot, "c-1", [(ProductFactory(), 1)])
    # when / then: the failure is the database's, not an order's
    with (
        mock.patch.object(holds, "reservations_take_batch", side_effect=OperationalError("down")),
        pytest.raises(OperationalError),
    ):
        services.reservations_drain(campaign_id=None)
    assert not Order.objects.filter(parked_at__isnull=False).exists()


def test_a_batch_out_of_time_parks_nothing_and_frees_its_line(chatbot) -> None:
    # given: a batch that Celery's soft time limit interrupts (a lock held elsewhere)
    from celery.exceptions import SoftTimeLimitExceeded  # noqa: PLC0415

    from orders import waiting_line  # noqa: PLC0415

    place(chatbot, "c-1", [(ProductFactory(), 1)])
    waiting_line.nudge_hold("reserve", "none")  # the worker's mark, as a nudge leaves it
    # when
    with (
        mock.patch.object(
            holds, "reservations_take_batch", side_effect=SoftTimeLimitExceeded("time")
        ),
        pytest.raises(SoftTimeLimitExceeded),
    ):
        services.reservations_drain(campaign_id=None)
    # then: no order is blamed, and the line is free for the next nudge at once
    assert not Order.objects.filter(parked_at__isnull=False).exists()
    assert waiting_line.nudge_claim("reserve", "none")
