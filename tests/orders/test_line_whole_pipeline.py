"""The line is the whole pipeline: an order stays in its campaign's line until it is final, so
places and waits count the orders held for payment too, the wait promised is the wait until
final, and the door refuses (429, Retry-After from the real drain) once a new order would
wait longer than LINE_MAX_WAIT_SECONDS. After Redis lost the line, it is rebuilt as a whole
from the orders not yet final."""

from __future__ import annotations

import time

import pytest
from pytest_django.fixtures import Settings

from coupons.models import Campaign
from infra import fast
from infra.errors import DomainError
from orders import selectors, services, waiting_line
from orders.errors import LineFull
from orders.gateway.client import ChargeOutcome
from orders.models import Order
from orders.services import ItemIn, order_place
from shop.models import ApiClient, Product
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db


def _orders(
    chatbot: ApiClient, campaign: Campaign, tea: Product, count: int, prefix: str = "c-"
) -> list[Order]:
    return [
        place(chatbot, f"{prefix}{i}", [(tea, 1)], coupon=claim(chatbot, campaign, f"{prefix}{i}"))
        for i in range(count)
    ]


def _settle(gateway_outcome: str = "succeeded") -> None:
    """One settlement batch with the gateway's answer played by a stub (the far side)."""
    claimed = services.payments_claim_batch(limit=100)
    outcome = ChargeOutcome(kind=gateway_outcome, charge_id="ch_1")
    services.payments_record([(job, outcome) for job in claimed.jobs])


def test_a_reserved_order_keeps_its_place_until_its_payment_makes_it_final(
    chatbot: ApiClient, django_capture_on_commit_callbacks
) -> None:
    # given: five orders in a campaign's line
    campaign = CampaignFactory()
    tea = ProductFactory(price=3000, stock=100)
    orders = _orders(chatbot, campaign, tea, 5)
    assert selectors.campaign_backlog(campaign_id=campaign.pk)["orders_waiting"] == 5
    # when: the reservation worker holds them all
    services.reservations_drain(campaign_id=campaign.pk)
    last = Order.objects.get(pk=orders[-1].pk)
    # then: they are still in line, waiting for their payment, and say so
    assert last.status == Order.Status.RESERVED
    assert selectors.campaign_backlog(campaign_id=campaign.pk)["orders_waiting"] == 5
    spot = selectors.order_queue_spot(last)
    assert spot.position == 5
    assert spot.estimated_wait_seconds >= 1
    # when: they are paid
    with django_capture_on_commit_callbacks(execute=True):
        _settle()
    # then: final, out of the line, and the line drained five orders
    assert selectors.campaign_backlog(campaign_id=campaign.pk)["orders_waiting"] == 0
    assert selectors.order_queue_spot(Order.objects.get(pk=last.pk)) == waiting_line.NO_WAIT
    rates = fast.client().keys(fast.key("q", str(campaign.pk), "rate", "*"))
    assert sum(int(fast.client().get(k)) for k in rates) == 5  # the drain counts them


def test_every_way_out_of_the_pipeline_leaves_the_line_once(
    chatbot: ApiClient, django_capture_on_commit_callbacks
) -> None:
    # given: four orders: one cancelled while waiting, one rejected, two declined
    campaign = CampaignFactory(per_customer_limit=1)
    tea = ProductFactory(price=3000, stock=100)
    waiting = _orders(chatbot, campaign, tea, 3)
    twice = place(chatbot, "c-0", [(tea, 1)], coupon_code=waiting[0].coupon.code)
    with django_capture_on_commit_callbacks(execute=True):
        services.order_cancel(
            client_id=chatbot.pk, public_id=str(waiting[2].public_id), actor="client"
        )
    assert selectors.campaign_backlog(campaign_id=campaign.pk)["orders_waiting"] == 3
    # when: the worker reserves two and rejects the coupon used twice, then both are declined
    with django_capture_on_commit_callbacks(execute=True):
        services.reservations_drain(campaign_id=campaign.pk)
    assert Order.objects.get(pk=twice.pk).status == Order.Status.REJECTED
    assert selectors.campaign_backlog(campaign_id=campaign.pk)["orders_waiting"] == 2
    with django_capture_on_commit_callbacks(execute=True):
        _settle("declined")
    # then: nothing is left in line, and nothing was counted twice
    assert selectors.campaign_backlog(campaign_id=campaign.pk)["orders_waiting"] == 0
    assert int(fast.client().get(fast.key("q", str(campaign.pk), "out"))) == 4


def test_the_door_refuses_a_wait_longer_than_it_promises_with_the_drain_s_retry_after(
    chatbot: ApiClient, settings: Settings
) -> None:
    # given: a line of 100 orders not yet final, draining 2 orders a second, and a promise
    # of at most 30 s
    settings.LINE_MAX_WAIT_SECONDS = 30
    campaign = CampaignFactory(coupons_total=10)
    tea = ProductFactory(price=3000, stock=100)
    first = _orders(chatbot, campaign, tea, 1)[0]
    fast.client().set(fast.key("q", str(campaign.pk), "in"), 100)
    now = int(time.time())
    for second in range(now - 10, now):
        fast.client().set(fast.key("q", str(campaign.pk), "rate", second), 2)
    late = claim(chatbot, campaign, "late")
    # when: one more order arrives (it would be 101st at 2/s: about 50 s)
    with pytest.raises(LineFull) as refused:
        order_place(
            client_id=chatbot.pk,
            customer_id="late",
            items=[ItemIn(sku=tea.sku, quantity=1)],
            coupon_code=late.code,
            idempotency_key="late",
        )
    # then: 429 with the time for the 40 orders over the promise to drain at 2/s, nothing
    # stored, no ticket taken
    assert isinstance(refused.value, DomainError)
    assert refused.value.status == 429
    assert refused.value.extra["retry_after"] == 20
    assert Order.objects.filter(customer_id="late").count() == 0
    assert int(fast.client().get(fast.key("q", str(campaign.pk), "in"))) == 100
    # and: at a faster drain the same line is within the promise, and is told its wait
    for second in range(now - 10, now):
        fast.client().set(fast.key("q", str(campaign.pk), "rate", second), 10)
    placed = order_place(
        client_id=chatbot.pk,
        customer_id="late",
        items=[ItemIn(sku=tea.sku, quantity=1)],
        coupon_code=late.code,
        idempotency_key="late",
    )
    assert placed.queue.position == 101
    assert 10 <= placed.queue.estimated_wait_seconds <= 11
    assert first.pk != placed.order.pk


def test_a_line_redis_lost_is_rebuilt_whole_even_after_a_worker_wrote_first(
    chatbot: ApiClient, django_capture_on_commit_callbacks
) -> None:
    # given: six orders: two paid, two held for payment, two waiting
    campaign = CampaignFactory()
    tea = ProductFactory(price=3000, stock=100)
    orders = _orders(chatbot, campaign, tea, 2)
    services.reservations_drain(campaign_id=campaign.pk)
    _settle()
    orders += _orders(chatbot, campaign, tea, 2, prefix="h-")
    services.reservations_take_batch(campaign_id=campaign.pk, limit=2)
    orders += _orders(chatbot, campaign, tea, 2, prefix="n-")
    # when: Redis loses everything, and a worker's progress lands before anyone rebuilds
    fast.client().flushdb()
    with django_capture_on_commit_callbacks(execute=True):
        _settle()  # the two held orders are paid: `out` is re-created as 2 on its own
    assert int(fast.client().get(fast.key("q", str(campaign.pk), "out"))) == 2
    services.pipeline_sweep()
    # then: the line holds exactly the two orders not yet final, and the newest is second
    assert selectors.campaign_backlog(campaign_id=campaign.pk)["orders_waiting"] == 2
    newest = Order.objects.get(pk=orders[-1].pk)
    assert selectors.order_queue_spot(newest).position == 2


def test_an_order_whose_payment_is_retried_counts_in_the_line_but_holds_nobody_up(
    chatbot: ApiClient, django_capture_on_commit_callbacks
) -> None:
    # given: three orders held, the gateway refusing the first one's charge (429)
    campaign = CampaignFactory()
    tea = ProductFactory(price=3000, stock=100)
    orders = _orders(chatbot, campaign, tea, 3)
    services.reservations_drain(campaign_id=campaign.pk)
    claimed = services.payments_claim_batch(limit=1)
    refused = ChargeOutcome(kind="retry", retry_after=30.0, error="429 over quota")
    services.payments_record([(job, refused) for job in claimed.jobs])
    # when: the sweep counts the orders set aside
    services.pipeline_sweep()
    # then: the line still holds all three (admission and the ceiling count them), but the
    # last is second: only one order ahead of it is still moving
    assert selectors.campaign_backlog(campaign_id=campaign.pk)["orders_waiting"] == 3
    last = Order.objects.get(pk=orders[-1].pk)
    assert selectors.order_queue_spot(last).position == 2
    # and: a new order is told the same
    newcomer = _orders(chatbot, campaign, tea, 1, prefix="n-")[0]
    assert selectors.order_queue_spot(newcomer).position == 3
