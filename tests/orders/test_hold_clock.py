"""A hold's clock runs from the order's first payment attempt: an order waiting in our own
payment line is never expired for our slowness; one whose gateway kept refusing the charge for
HOLD_SECONDS since that attempt is expired, says why, and gives everything back. Nothing is
expired while a payment claim for it may be in flight, even a claim that committed after the
sweep's read took its snapshot."""

from __future__ import annotations

from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orders import selectors, services
from orders.gateway.client import ChargeOutcome
from orders.models import Order, Payment, Reservation
from orders.services import lifecycle
from shop.models import ApiClient, Product
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory


def _reserved(chatbot: ApiClient, tea: Product) -> Order:
    campaign = CampaignFactory()
    order = place(chatbot, "c-1", [(tea, 1)], coupon=claim(chatbot, campaign, "c-1"))
    services.reservations_drain(campaign_id=campaign.pk)
    return Order.objects.get(pk=order.pk)


def _later(seconds: float):
    """The services' clock moved on by `seconds`."""
    moved = timezone.now() + timedelta(seconds=seconds)
    return mock.patch.object(timezone, "now", return_value=moved)


@pytest.mark.django_db
def test_an_order_waiting_for_its_first_payment_attempt_never_expires(
    chatbot: ApiClient,
) -> None:
    # given: a reserved order nobody has tried to charge yet (the payment line is slow)
    tea = ProductFactory(price=3000, stock=10)
    order = _reserved(chatbot, tea)
    assert Reservation.objects.get(order=order).expires_at is None
    # when: the sweep runs long after a hold's time
    with _later(settings.HOLD_SECONDS * 3):
        expired = services.holds_expire()
    # then: it is still held, waiting for its payment
    assert expired == 0
    assert Order.objects.get(pk=order.pk).status == Order.Status.RESERVED


@pytest.mark.django_db
def test_the_first_attempt_starts_the_clock_and_a_gateway_that_keeps_refusing_expires_it(
    chatbot: ApiClient,
) -> None:
    # given: a reserved order whose first charge the gateway refused (429: nothing charged)
    tea = ProductFactory(price=3000, stock=10)
    order = _reserved(chatbot, tea)
    claimed = services.payments_claim_batch(limit=10)
    hold = Reservation.objects.get(order=order)
    started = Payment.objects.get(order=order).created_at
    assert hold.expires_at == started + timedelta(seconds=settings.HOLD_SECONDS)
    refused = ChargeOutcome(kind="retry", retry_after=5.0, error="429 over quota")
    services.payments_record([(job, refused) for job in claimed.jobs])
    # when: the sweep runs before, then after, the hold's time since that attempt
    with _later(settings.HOLD_SECONDS - 5):
        early = services.holds_expire()
    with _later(settings.HOLD_SECONDS + 5):
        late = services.holds_expire()
    # then: expired only then, with its reason, and its unit back in stock
    assert (early, late) == (0, 1)
    order.refresh_from_db()
    assert (order.status, order.reason) == (Order.Status.EXPIRED, Order.Reason.PAYMENT_TIMEOUT)
    tea.refresh_from_db()
    assert tea.stock == 10


@pytest.mark.django_db(transaction=True)
def test_a_claim_that_commits_after_the_sweep_read_its_snapshot_keeps_its_order(
    chatbot: ApiClient,
) -> None:
    # given: an order whose gateway refused its first charge (429), its hold running out in a
    # minute, its retry due now
    tea = ProductFactory(price=3000, stock=10)
    order = _reserved(chatbot, tea)
    claimed = services.payments_claim_batch(limit=10)
    refused = ChargeOutcome(kind="retry", retry_after=0.0, error="429 over quota")
    services.payments_record([(job, refused) for job in claimed.jobs])
    deadline = timezone.now() + timedelta(minutes=1)
    Reservation.objects.filter(order=order).update(expires_at=deadline)
    Payment.objects.filter(order=order).update(next_attempt_at=timezone.now())
    # and: the sweep's statement, at the deadline, takes its snapshot and finds the order
    # (its row locks, taken in a savepoint rolled back, are let go: the statement has not
    # reached them yet)
    with transaction.atomic():
        seen = selectors.expired_holds_for_update(now=deadline, limit=10)
        transaction.set_rollback(True)
    assert [o.pk for o in seen] == [order.pk]
    # and: a payment claim then takes the order and commits
    claims = services.payments_claim_batch(limit=10).jobs
    assert [job.order_id for job in claims] == [order.pk]

    def locked_from_that_snapshot(*, now: datetime, limit: int) -> list[Order]:
        return selectors.orders_for_update(order_ids=[o.pk for o in seen])

    # when: the sweep's statement reaches the order's row lock and the sweep goes on
    with mock.patch.object(
        lifecycle.selectors, "expired_holds_for_update", locked_from_that_snapshot
    ):
        expired = services.holds_expire()
    # then: it left the order to the charge's outcome
    assert expired == 0
    assert Order.objects.get(pk=order.pk).status == Order.Status.RESERVED
    assert Payment.objects.get(order=order).status == Payment.Status.PENDING
    # and: the charge succeeds, and the order is paid, its unit sold
    services.payments_record([(claims[0], ChargeOutcome(kind="succeeded", charge_id="ch_1"))])
    assert Order.objects.get(pk=order.pk).status == Order.Status.PAID
    tea.refresh_from_db()
    assert tea.stock == 9
