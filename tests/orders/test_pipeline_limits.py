"""Rate-limited queues through real worker processes: the global gateway limit is used and
not exceeded, a slow gateway does not slow reservations, transient failures are retried
into exactly one charge, and work that always fails is parked and replayed by staff."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from django.test import Client

from orders.models import Order, Payment
from shop import services as shop_services
from shop.models import RateLimit
from tests.factories.orders import place
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.pipeline import all_terminal, ledger, succeeded_charges_by_reference, wait_for

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


def configure(gateway: httpx.Client, **settings: object) -> None:
    gateway.post("/_sandbox/config", json=settings).raise_for_status()


def place_payable(count: int) -> list[Order]:
    client = ApiClientFactory()
    tea = ProductFactory(price=3000, stock=10_000)
    return [place(client, f"c-{i}", [(tea, 1)]) for i in range(count)]


def test_the_gateway_limit_is_used_and_never_exceeded(gateway: httpx.Client, start_worker) -> None:
    # given: the gateway's quota and our global limit are the same 20 requests/s
    configure(gateway, quota_rps=20, quota_burst=20)
    # A burst of 10 (the sandbox's is 20) rides over a worker's pause between batches
    # without losing tokens, and never exceeds what the gateway itself allows at once.
    shop_services.rate_limit_set(scope=RateLimit.Scope.GATEWAY, per_second=20, burst=10, actor="t")
    orders = place_payable(100)
    # when: two payment workers share the limit
    start_worker(queues="reservations,maintenance")
    start_worker(queues="payments")
    start_worker(queues="payments")
    wait_for(all_terminal(o.pk for o in orders), timeout=60, what="100 orders paid")
    # then: no 429 from the gateway, and the quota was used (the middle 80 %: past the
    # opening burst, before the last stragglers)
    book = ledger(gateway)
    stamps = sorted(datetime.fromisoformat(str(c["created_at"])) for c in book["charges"])
    steady = stamps[10:90]
    rate = (len(steady) - 1) / (steady[-1] - steady[0]).total_seconds()
    print(f"quota 20/s: charged at {rate:.2f}/s, gateway 429s: {book['stats']['http_429']}")  # noqa: T201
    assert book["stats"]["http_429"] == 0
    assert len(stamps) == 100
    assert 0.9 * 20 <= rate <= 1.1 * 20, f"charged at {rate:.1f}/s against a quota of 20/s"


def test_a_crawling_gateway_does_not_slow_reservations(gateway: httpx.Client, start_worker) -> None:
    # given: each charge takes 3 s and a payments worker makes two at a time
    configure(gateway, latency_ms=3000)
    orders = place_payable(60)
    start_worker(queues="payments", PAYMENT_CONCURRENCY="2")
    # when
    start_worker(queues="reservations,maintenance")
    wait_for(
        lambda: not Order.objects.filter(status="received").exists(), what="every order reserved"
    )
    # then: every order holds its stock while payments have barely begun
    paid = Order.objects.filter(status="paid").count()
    assert Order.objects.filter(pk__in=[o.pk for o in orders], status="reserved").count() >= 55
    assert paid <= 5


def test_transient_failures_are_retried_into_one_charge(
    gateway: httpx.Client, start_worker
) -> None:
    # given: the gateway fails every request (before charging) for a while
    configure(gateway, error_rate=1.0)
    (order,) = place_payable(1)
    start_worker(PAYMENT_MAX_ATTEMPTS="50")
    wait_for(
        lambda: Payment.objects.filter(order=order, attempts__gte=3).exists(),
        what="three failed attempts",
    )
    # when: it recovers
    configure(gateway, error_rate=0.0)
    wait_for(all_terminal([order.pk]), what="the order paid")
    # then
    order.refresh_from_db()
    assert order.status == "paid"
    assert succeeded_charges_by_reference(gateway) == {str(order.public_id): 1}


def test_work_that_always_fails_is_parked_then_replayed_by_staff(
    gateway: httpx.Client, start_worker, admin_client: Client
) -> None:
    # given: the gateway answers 500 to everything, lookups included
    configure(gateway, error_rate=1.0)
    (order,) = place_payable(1)
    start_worker()  # PAYMENT_MAX_ATTEMPTS is 4 in the test settings
    wait_for(lambda: Payment.objects.filter(order=order, status="parked").exists(), what="parking")
    order.refresh_from_db()
    assert order.status == "reserved"  # the hold stays while money may have moved
    # when: the gateway recovers and staff replay it from the admin
    configure(gateway, error_rate=0.0)
    payment = Payment.objects.get(order=order)
    answer = admin_client.post(
        "/admin/orders/payment/", {"action": "replay", "_selected_action": [payment.pk]}
    )
    wait_for(all_terminal([order.pk]), what="the replayed payment")
    # then: paid, and charged once
    assert answer.status_code == 302
    order.refresh_from_db()
    assert order.status == "paid"
    assert succeeded_charges_by_reference(gateway) == {str(order.public_id): 1}
