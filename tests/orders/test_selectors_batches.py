"""The workers' batch reads (orders.selectors, and the reservation's locking reads of coupons
and shop): which orders a settlement claim picks, which a reservation claim picks, what the
locks read, and that each read is one statement whatever the batch's size."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from coupons import selectors as coupons_selectors
from coupons.models import Campaign
from orders import selectors, services
from orders.models import Order, Payment
from shop import selectors as shop_selectors
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db

PS = Payment.Status


def _reserved(chatbot, count: int) -> list[Order]:
    campaign = CampaignFactory()
    tea = ProductFactory(price=3000, stock=1000)
    orders = [
        place(chatbot, f"c-{i}", [(tea, 1)], coupon=claim(chatbot, campaign, f"c-{i}"))
        for i in range(count)
    ]
    services.reservations_drain(campaign_id=campaign.pk)
    assert set(Order.objects.values_list("status", flat=True)) == {Order.Status.RESERVED}
    return orders


def _due(now) -> set[int]:
    with transaction.atomic():
        return {o.pk for o in selectors.orders_due_for_payment_for_update(now=now, limit=100)}


def test_a_settlement_claim_picks_orders_without_a_payment_or_whose_attempt_is_due(
    chatbot,
) -> None:
    # given: seven reserved orders, six with a payment in each state that matters
    orders = _reserved(chatbot, 7)
    now = timezone.now()
    soon, past = now + timedelta(seconds=30), now - timedelta(seconds=1)
    states = [
        (PS.RETRY, past),  # due again
        (PS.RETRY, soon),  # not yet
        (PS.UNKNOWN, past),  # due: look the outcome up
        (PS.PENDING, past),  # its lease ran out: its worker died mid-call
        (PS.PENDING, soon),  # being charged right now
        (PS.SUCCEEDED, past),  # charged: the record moves the order, not a new claim
    ]
    for order, (status, at) in zip(orders[1:], states, strict=True):
        Payment.objects.create(
            order=order,
            idempotency_key=f"k-{order.pk}",
            amount=order.payable,
            currency=order.currency,
            status=status,
            attempts=1,
            next_attempt_at=at,
        )
    # when
    due = _due(now)
    # then: the one without a payment, the due retry, the unknown and the lapsed lease
    assert due == {orders[0].pk, orders[1].pk, orders[3].pk, orders[4].pk}


def test_a_settlement_claim_skips_orders_that_are_not_reserved(chatbot) -> None:
    # given: one reserved order and one still in line
    (reserved,) = _reserved(chatbot, 1)
    waiting = place(chatbot, "c-9", [(ProductFactory(price=100), 1)])
    # when
    due = _due(timezone.now())
    # then
    assert waiting.status == Order.Status.RECEIVED
    assert due == {reserved.pk}


def test_a_reservation_claim_takes_the_line_in_order_less_the_parked(chatbot) -> None:
    # given: a campaign's line of four, the second parked; and an order of no campaign
    campaign = CampaignFactory()
    tea = ProductFactory(price=3000, stock=100)
    line = [
        place(chatbot, f"c-{i}", [(tea, 1)], coupon=claim(chatbot, campaign, f"c-{i}"))
        for i in range(4)
    ]
    Order.objects.filter(pk=line[1].pk).update(parked_at=timezone.now())
    loose = place(chatbot, "c-x", [(tea, 1)])
    # when
    with transaction.atomic():
        first_two = selectors.received_orders_for_update(campaign_id=campaign.pk, limit=2)
        no_campaign = selectors.received_orders_for_update(campaign_id=None, limit=10)
    # then
    assert [o.pk for o in first_two] == [line[0].pk, line[2].pk]
    assert [o.pk for o in no_campaign] == [loose.pk]


def test_each_batch_read_is_one_prepared_statement_whatever_the_batch_size(chatbot) -> None:
    # given: reserved orders, each with its hold and lines
    orders = _reserved(chatbot, 7)
    ids = [o.pk for o in orders]
    # when: every read runs with batches of every size, more often than the prepare threshold
    with transaction.atomic():
        for size in range(1, 8):
            batch = ids[:size]
            assert len(selectors.lines_by_order(batch)) == size
            assert len(selectors.reservations_by_order(batch)) == size
            assert selectors.payments_by_order(batch) == {}
            assert [o.pk for o in selectors.orders_for_update(order_ids=batch)] == batch
    # then: PostgreSQL holds one prepared statement per read, not one per batch size, each
    # naming its columns (a column a migration adds is not read)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements"
            " WHERE statement LIKE 'SELECT %% FROM orders_%%= ANY($1)%%'"
        )
        texts = [row[0] for row in cursor.fetchall()]
    assert sorted(text.split(" FROM ")[1].split()[0] for text in texts) == [
        "orders_order",
        "orders_orderline",
        "orders_payment",
        "orders_reservation",
    ]
    assert not [text for text in texts if "*" in text]


def test_the_reservation_locks_read_what_they_lock(chatbot) -> None:
    # given: a campaign, two coupons and two products
    campaign = CampaignFactory()
    coupons = [claim(chatbot, campaign, f"c-{i}") for i in range(2)]
    products = [ProductFactory(stock=5), ProductFactory(stock=7)]
    # when
    with transaction.atomic():
        locked_campaign = coupons_selectors.campaign_for_update(campaign_id=campaign.pk)
        locked_coupons = coupons_selectors.coupons_for_update(coupon_ids=[c.pk for c in coupons])
        locked_products = shop_selectors.products_for_update([p.pk for p in products])
    # then: the rows, by primary key, with what the batch reads of them
    assert (locked_campaign.pk, locked_campaign.budget_total) == (
        campaign.pk,
        campaign.budget_total,
    )
    assert {pk: c.code for pk, c in locked_coupons.items()} == {c.pk: c.code for c in coupons}
    assert {pk: (p.sku, p.stock) for pk, p in locked_products.items()} == {
        p.pk: (p.sku, p.stock) for p in products
    }


def test_locking_a_campaign_that_does_not_exist_says_so() -> None:
    with pytest.raises(Campaign.DoesNotExist), transaction.atomic():
        coupons_selectors.campaign_for_update(campaign_id=987_654)
