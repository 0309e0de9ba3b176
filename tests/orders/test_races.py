"""Concurrency proved with concurrency: threads racing against the real database, many more
requests than there is stock, coupons or budget."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connection, transaction

from coupons import selectors as coupons_selectors
from coupons import services as coupons_services
from coupons.models import Campaign, Coupon, CouponSlice
from coupons.selectors import campaign_coupons_issued
from infra.errors import DomainError
from orders import services
from orders.models import Order, Reservation
from shop import selectors as shop_selectors
from shop.models import Product
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 16


def race(calls: list[Callable[[], object]]) -> list[object]:
    """Run the calls from THREADS threads, all released at once by a start gate; each thread
    has its own database connection. Returns results, or the DomainError each raised."""
    gate = threading.Event()

    def run(call: Callable[[], object]) -> object:
        gate.wait(timeout=10)
        try:
            return call()
        except DomainError as exc:
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(run, call) for call in calls]
        gate.set()
        return [f.result() for f in futures]


def waiting_for_a_lock() -> bool:
    """Whether a backend of this database waits for a lock (another holds the row it wants)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        (waiting,) = cursor.fetchone()
    return waiting > 0


def drain_concurrently(campaign_id: int | None, *, batch: int = 7) -> None:
    """Several workers taking small batches of the same line at once."""

    def worker() -> None:
        while services.reservations_take_batch(campaign_id=campaign_id, limit=batch).seen:
            pass

    race([worker] * 6)


def test_200_orders_for_50_units_hold_exactly_50() -> None:
    # given
    client = ApiClientFactory()
    tea = ProductFactory(stock=50)
    # when: 200 orders placed at once, then reserved by six concurrent workers
    race([lambda i=i: place(client, f"c-{i}", [(tea, 1)]) for i in range(200)])
    drain_concurrently(None)
    # then
    statuses = Counter(Order.objects.values_list("status", flat=True))
    assert statuses == {"reserved": 50, "rejected": 150}
    assert Product.objects.get(pk=tea.pk).stock == 0
    assert Reservation.objects.count() == 50


def test_100_claims_for_10_coupons_issue_exactly_10() -> None:
    # given
    client = ApiClientFactory()
    campaign = CampaignFactory(coupons_total=10)
    # when
    results = race([lambda i=i: claim(client, campaign, f"c-{i}") for i in range(100)])
    # then
    issued = [r for r in results if isinstance(r, Coupon)]
    refused = Counter(r.code for r in results if isinstance(r, DomainError))
    assert len(issued) == 10
    assert refused == {"sold_out": 90}
    assert Coupon.objects.count() == 10
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 10


def test_one_customers_concurrent_claims_stay_within_the_limit() -> None:
    # given
    client = ApiClientFactory()
    campaign = CampaignFactory(per_customer_limit=2, coupons_total=100)
    # when: 30 claims for the same customer, each with its own idempotency key
    results = race([lambda: claim(client, campaign, "greedy") for _ in range(30)])
    # then
    assert Coupon.objects.filter(customer_id="greedy").count() == 2
    assert Counter(type(r).__name__ for r in results) == {"Coupon": 2, "LimitReached": 28}
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 2


def test_replayed_claims_racing_give_one_coupon() -> None:
    # given
    client = ApiClientFactory()
    campaign = CampaignFactory(per_customer_limit=5)
    key = uuid.uuid4().hex

    def replay() -> object:
        return coupons_services.coupon_claim(
            client_id=client.pk, slug=campaign.slug, customer_id="c-1", idempotency_key=key
        ).coupon

    # when
    results = race([replay] * 20)
    # then: one coupon, and the losers' slice increments rolled back with their inserts
    assert {r.code for r in results} == {Coupon.objects.get().code}
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 1


def slices_of(campaign: Campaign) -> list[tuple[int, int, int]]:
    return list(
        CouponSlice.objects.filter(campaign=campaign)
        .order_by("number")
        .values_list("number", "issued", "cap")
    )


def fill_slices_except(campaign: Campaign, room: dict[int, int]) -> None:
    """Given: every slice full but those in `room`, which keep that many coupons free."""
    for number, _, cap in slices_of(campaign):
        CouponSlice.objects.filter(campaign=campaign, number=number).update(
            issued=cap - room.get(number, 0)
        )


def test_300_claims_over_16_slices_for_50_coupons_issue_exactly_50() -> None:
    # given: 50 coupons over 16 slices (caps of 3 and 4), six times as many claimers
    client = ApiClientFactory()
    campaign = CampaignFactory(coupons_total=50)
    assert len(slices_of(campaign)) == settings.COUPON_SLICES == 16
    # when
    results = race([lambda i=i: claim(client, campaign, f"c-{i}") for i in range(300)])
    # then: every coupon issued once, each slice full to its cap and no further
    issued = [r for r in results if isinstance(r, Coupon)]
    assert len(issued) == 50 == len({c.code for c in issued})
    assert Counter(r.code for r in results if isinstance(r, DomainError)) == {"sold_out": 250}
    assert Coupon.objects.filter(campaign=campaign).count() == 50
    assert all(issued == cap for _, issued, cap in slices_of(campaign))
    assert campaign_coupons_issued(campaign_id=campaign.pk) == campaign.coupons_total


def test_the_last_coupons_of_unevenly_exhausted_slices_are_all_found() -> None:
    # given: 160 coupons over 16 slices, all full but slice 3 (4 left), 11 (1) and 15 (2):
    # most claims start at a full slice and must go round to find these
    client = ApiClientFactory()
    campaign = CampaignFactory(coupons_total=160)
    fill_slices_except(campaign, {3: 4, 11: 1, 15: 2})
    # when: 60 customers claim at once
    results = race([lambda i=i: claim(client, campaign, f"c-{i}") for i in range(60)])
    # then: exactly the 7 left are issued (no sold_out while a slice had room), none beyond
    issued = [r for r in results if isinstance(r, Coupon)]
    assert len(issued) == 7
    assert Counter(r.code for r in results if isinstance(r, DomainError)) == {"sold_out": 53}
    assert all(issued == cap for _, issued, cap in slices_of(campaign))
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 160


def test_a_claim_whose_only_free_slice_is_locked_waits_for_it() -> None:
    # given: one coupon left, in slice 9, which another transaction holds locked
    client = ApiClientFactory()
    campaign = CampaignFactory(coupons_total=32)
    fill_slices_except(campaign, {9: 1})
    locked, release = threading.Event(), threading.Event()

    def holder() -> None:
        with transaction.atomic():
            CouponSlice.objects.select_for_update(no_key=True).get(campaign=campaign, number=9)
            locked.set()
            release.wait(timeout=10)
        connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    assert locked.wait(timeout=10)
    # when: a claim comes while it is held, and the holder lets go without taking it
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(lambda: claim(client, campaign, "patient"))
        wait_until(waiting_for_a_lock, timeout=10, what="the claim to wait on slice 9's lock")
        waited = not pending.done()
        release.set()
        coupon = pending.result(timeout=10)
    thread.join()
    # then: the claim waited rather than answering sold_out, and took the last coupon
    assert waited
    assert coupon.customer_id == "patient"
    assert all(issued == cap for _, issued, cap in slices_of(campaign))
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 32


def test_concurrent_orders_with_one_coupon_only_one_holds_it() -> None:
    # given
    client = ApiClientFactory()
    campaign = CampaignFactory()
    tea = ProductFactory(stock=100)
    coupon = claim(client, campaign, "c-1")
    # when
    race([lambda: place(client, "c-1", [(tea, 1)], coupon=coupon) for _ in range(20)])
    drain_concurrently(campaign.pk, batch=3)
    # then
    statuses = Counter(Order.objects.values_list("status", "reason"))
    assert statuses == {("reserved", ""): 1, ("rejected", "coupon_in_use"): 19}
    assert Coupon.objects.get(pk=coupon.pk).status == Coupon.Status.RESERVED


def test_the_budget_is_never_exceeded() -> None:
    # given: budget for exactly 5 full discounts, 40 customers with coupons
    client = ApiClientFactory()
    campaign = CampaignFactory(budget_total=5 * 2500, coupons_total=100)
    tea = ProductFactory(price=3000, stock=1000)
    coupons = [claim(client, campaign, f"c-{i}") for i in range(40)]
    # when
    race([lambda c=c: place(client, c.customer_id, [(tea, 1)], coupon=c) for c in coupons])
    drain_concurrently(campaign.pk, batch=4)
    # then
    campaign.refresh_from_db()
    statuses = Counter(Order.objects.values_list("status", "reason"))
    assert statuses == {("reserved", ""): 5, ("rejected", "budget_exhausted"): 35}
    assert campaign.budget_held == 12_500
    assert campaign.budget_held + campaign.budget_spent <= campaign.budget_total


def test_replayed_orders_racing_give_one_order() -> None:
    # given
    client = ApiClientFactory()
    tea = ProductFactory()
    # when
    results = race([lambda: place(client, "c-1", [(tea, 1)], key="same-key") for _ in range(20)])
    # then
    assert Order.objects.count() == 1
    assert {r.pk for r in results} == {Order.objects.get().pk}


def test_intake_never_waits_for_a_batch_holding_its_campaign_coupon_and_products() -> None:
    # given: a worker's batch holding the rows an order references, as reservation does
    client = ApiClientFactory()
    campaign = CampaignFactory()
    tea = ProductFactory(stock=100)
    coupon = claim(client, campaign, "c-1")
    held, release = threading.Event(), threading.Event()

    def batch() -> None:
        try:
            with transaction.atomic():
                coupons_selectors.campaign_for_update(campaign_id=campaign.pk)
                coupons_selectors.coupons_for_update(coupon_ids=[coupon.pk])
                shop_selectors.products_for_update([tea.pk])
                held.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    worker = threading.Thread(target=batch)
    worker.start()
    try:
        assert held.wait(timeout=10)
        # when: an order for exactly those rows, allowed to wait two seconds for a lock
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        order = place(client, "c-1", [(tea, 1)], coupon=coupon)
    finally:
        release.set()
        worker.join()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    # then: its INSERTs' foreign-key checks did not queue behind the batch's locks
    assert Order.objects.filter(pk=order.pk, status=Order.Status.RECEIVED).exists()
