"""The pipeline's counters move with the orders: once per batch, after commit, and not at all
for a batch that rolls back (real database; this process's registry)."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone
from prometheus_client import REGISTRY

from orders import services
from orders.models import Order
from orders.services.transitions import orders_move
from tests.factories.orders import place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)  # on_commit runs for real


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_batch_counts_its_transitions_and_rejections(chatbot) -> None:
    # given: three orders for two units
    tea = ProductFactory(stock=2)
    last = [place(chatbot, f"c-{i}", [(tea, 1)]) for i in range(3)][-1]
    reserved = sample("orders_transitions_total", source="received", target="reserved")
    rejected = sample("orders_transitions_total", source="received", target="rejected")
    sold_out = sample("orders_rejected_total", reason="sold_out")
    batches = sample("pipeline_batch_size_count", stage="reserve")
    # when
    services.reservations_drain(campaign_id=None)
    # then
    assert sample("orders_transitions_total", source="received", target="reserved") == (
        reserved + 2
    )
    assert sample("orders_transitions_total", source="received", target="rejected") == (
        rejected + 1
    )
    assert Order.objects.get(pk=last.pk).reason == "sold_out"
    assert sample("orders_rejected_total", reason="sold_out") == sold_out + 1
    assert sample("pipeline_batch_size_count", stage="reserve") == batches + 1  # one batch


def test_a_move_that_rolls_back_counts_nothing(chatbot) -> None:
    # given
    order = place(chatbot, "c-1", [(ProductFactory(), 1)])
    cancelled = sample("orders_transitions_total", source="received", target="cancelled")

    def cancel_then_fail() -> None:
        with transaction.atomic():
            locked = list(Order.objects.select_for_update().filter(pk=order.pk))
            orders_move(locked, Order.Status.CANCELLED, actor="test", now=timezone.now())
            raise RuntimeError("rolled back")

    # when
    with pytest.raises(RuntimeError):
        cancel_then_fail()
    # then
    assert Order.objects.get(pk=order.pk).status == Order.Status.RECEIVED
    assert sample("orders_transitions_total", source="received", target="cancelled") == cancelled
