"""Recording gateway outcomes: what counts as an attempt towards parking a payment."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.utils import timezone

from orders import services
from orders.gateway.client import ChargeOutcome
from orders.models import Order, Payment
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db

QUOTA = ChargeOutcome(kind="retry", retry_after=1.0, error="HTTP 429 quota_exceeded: slow down")
UNKNOWN = ChargeOutcome(kind="unknown", error="ReadTimeout: timed out")


def record(order: Order, outcome: ChargeOutcome) -> Payment:
    Payment.objects.filter(order=order).update(next_attempt_at=timezone.now())
    (job,) = services.payments_claim_batch(limit=10).jobs
    services.payments_record([(job, outcome)])
    return Payment.objects.get(order=order)


@pytest.fixture
def reserved(chatbot) -> Order:
    tea = ProductFactory(price=3000)
    order = place(chatbot, "c-1", [(tea, 1)], coupon=claim(chatbot, CampaignFactory(), "c-1"))
    services.reservations_drain(campaign_id=order.campaign_id)
    order.refresh_from_db()
    assert order.status == Order.Status.RESERVED
    return order


def test_a_gateway_at_its_quota_never_parks_a_payment(reserved: Order) -> None:
    # when: the gateway refuses with 429 far more often than the parking limit
    for _ in range(settings.PAYMENT_MAX_ATTEMPTS * 3):
        payment = record(reserved, QUOTA)
    # then: nothing moved there, so nothing counted; the refusal is shown, the order waits
    assert (payment.status, payment.attempts) == (Payment.Status.RETRY, 0)
    assert payment.last_error.startswith("HTTP 429")
    assert Order.objects.get(pk=reserved.pk).status == Order.Status.RESERVED


def test_unknown_outcomes_count_and_park_at_the_limit(reserved: Order) -> None:
    # when: every attempt ends without a definite answer
    for _ in range(settings.PAYMENT_MAX_ATTEMPTS):
        payment = record(reserved, UNKNOWN)
    # then
    assert payment.status == Payment.Status.PARKED
    assert payment.attempts == settings.PAYMENT_MAX_ATTEMPTS
