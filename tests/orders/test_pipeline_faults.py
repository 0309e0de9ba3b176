"""The pipeline under faults: a worker killed with SIGKILL in the middle of its batches, and
holds whose gateway keeps refusing the charge. Each test starts its own worker process(es)."""

from __future__ import annotations

import signal
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from coupons.models import Campaign
from orders import services as orders_services
from orders.models import Order, Payment, Reservation
from shop import services as shop_services
from shop.models import Product, RateLimit
from tests import stack
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.pipeline import all_terminal, succeeded_charges_by_reference, wait_for
from tests.waiting import wait_until

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


def test_sigkill_mid_batch_loses_nothing_and_charges_once(
    gateway: httpx.Client, start_worker
) -> None:
    # given: 150 orders for 100 units, 30 of them declined, and a slow gateway so that the
    # kill lands while charges are in flight
    gateway.post("/_sandbox/config", json={"latency_ms": 150}).raise_for_status()
    client = ApiClientFactory()
    campaign = CampaignFactory(coupons_total=1000, budget_total=10_000_000)
    tea = ProductFactory(price=3000, stock=100)
    orders = []
    for i in range(150):
        customer = f"decline-{i}" if i % 5 == 0 else f"c-{i}"
        orders.append(place(client, customer, [(tea, 1)], coupon=claim(client, campaign, customer)))
    # small batches, few concurrent calls: at any moment some charges are in flight
    small = {
        "PAYMENT_CONCURRENCY": "4",
        "SETTLEMENT_BATCH_SIZE": "12",
        "RESERVATION_BATCH_SIZE": "40",
    }
    worker = start_worker(**small)
    wait_for(
        lambda: (
            Payment.objects.filter(status="pending").exists()
            and Payment.objects.filter(status__in=["succeeded", "declined"]).count() >= 12
        ),
        what="payments settled and more in flight",
    )
    # when: the worker (parent and children) dies at once, mid-flight
    stack.stop(worker, sig=signal.SIGKILL)
    in_flight = Payment.objects.filter(status="pending").count()
    assert in_flight > 0, "the kill should land while charges are in flight"
    start_worker()
    wait_for(
        all_terminal(o.pk for o in orders), timeout=90, what="every order terminal after the kill"
    )
    # then
    statuses = dict.fromkeys(Order.Status.values, 0)
    for status in Order.objects.filter(pk__in=[o.pk for o in orders]).values_list(
        "status", flat=True
    ):
        statuses[status] += 1
    charged = succeeded_charges_by_reference(gateway)
    paid = set(Order.objects.filter(status="paid").values_list("public_id", flat=True))
    assert max(charged.values()) == 1, "an order was charged twice"
    assert set(charged) == {str(p) for p in paid}, "paid orders and successful charges differ"
    assert statuses["paid"] + statuses["payment_failed"] + statuses["rejected"] == 150
    assert statuses["rejected"] == 50  # only 100 units
    sold = Product.objects.get(pk=tea.pk)
    assert sold.stock == 100 - statuses["paid"]
    budget = Campaign.objects.get(pk=campaign.pk)
    assert budget.budget_held == 0
    assert budget.budget_spent == 2500 * statuses["paid"]
    print(f"in flight at the kill: {in_flight}; outcome: {statuses}")  # noqa: T201


def test_a_hold_waits_for_its_first_attempt_and_expires_only_when_the_gateway_keeps_refusing(
    gateway: httpx.Client, start_worker
) -> None:
    # given: one-second holds, and workers that reserve and sweep but none that pays yet
    start_worker(queues="reservations,maintenance", HOLD_SECONDS="1")
    client = ApiClientFactory()
    campaign = CampaignFactory(budget_total=100_000)
    tea = ProductFactory(stock=10)
    order = place(client, "c-1", [(tea, 2)], coupon=claim(client, campaign, "c-1"))
    wait_for(lambda: Order.objects.get(pk=order.pk).status == "reserved", what="the hold")
    assert Product.objects.get(pk=tea.pk).stock == 8
    # when: more than a hold's time passes while it waits in our own payment line, and the
    # sweep runs (proving that nothing happens takes waiting: here elapsed time is the point,
    # so the condition is the sweep's own clock past a hold's time since the hold was made)
    held_until = Reservation.objects.get(order=order).created_at + timedelta(seconds=1)
    wait_until(lambda: timezone.now() > held_until, timeout=5, what="a hold's time to pass")
    expired = orders_services.pipeline_sweep().expired
    # then: it is still held: our slowness never expires an order
    assert expired == 0
    assert Order.objects.get(pk=order.pk).status == Order.Status.RESERVED
    # when: a payment worker starts, and our gateway limit lets no charge through
    shop_services.rate_limit_set(scope=RateLimit.Scope.GATEWAY, per_second=0, burst=1, actor="t")
    start_worker(queues="payments", HOLD_SECONDS="1")
    wait_for(all_terminal([order.pk]), what="the hold to expire")
    # then: expired a hold's time after its first attempt, with its reason, all released
    order.refresh_from_db()
    assert (order.status, order.reason) == (Order.Status.EXPIRED, Order.Reason.PAYMENT_TIMEOUT)
    assert Product.objects.get(pk=tea.pk).stock == 10
    assert Campaign.objects.get(pk=campaign.pk).budget_held == 0
    assert Payment.objects.get(order=order).status == Payment.Status.RETRY
    assert succeeded_charges_by_reference(gateway) == {}
