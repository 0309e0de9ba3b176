"""Recording gateway outcomes: what counts as an attempt towards parking a payment."""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter

import pytest
from django.conf import settings
from django.utils import timezone

from orders import services
from orders.gateway.client import ChargeOutcome, GatewayClient
from orders.models import Order, Payment, Reservation
from orders.services.settlement import UNSENT, ChargeJob, payment_attempt
from shop import selectors as shop_selectors
from shop import services as shop_services
from shop.models import RateLimit
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory
from tests.pipeline import ledger

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


# --- The gateway limit's tokens, taken for a batch at once -----------------------------------


def test_a_batch_takes_its_tokens_at_once_and_the_rest_wait_uncounted(chatbot, gateway) -> None:
    # given: five reserved orders and a gateway limit with three tokens left for a long while
    shop_services.rate_limit_set(
        scope=RateLimit.Scope.GATEWAY, per_second=0.001, burst=3, actor="test"
    )
    shop_selectors.rate_limits_forget()
    tea = ProductFactory(price=3000)
    campaign = CampaignFactory()
    for i in range(5):
        customer = f"c-{i}"
        place(chatbot, customer, [(tea, 1)], coupon=claim(chatbot, campaign, customer))
    services.reservations_drain(campaign_id=campaign.pk)
    # when
    services.payments_drain()
    # then: three charged; two not sent, not counted as attempts, back in line for later
    payments = Payment.objects.order_by("order_id")
    assert Counter(p.status for p in payments) == {"succeeded": 3, "retry": 2}
    assert all(p.attempts == 0 for p in payments if p.status == "retry")
    assert Order.objects.filter(status=Order.Status.PAID).count() == 3


def test_a_prepaid_attempt_spends_the_batchs_token_on_its_first_request(chatbot, gateway) -> None:
    # given: a stopped gateway limit, so no token can be taken now
    shop_services.rate_limit_set(scope=RateLimit.Scope.GATEWAY, per_second=0, burst=1, actor="t")
    shop_selectors.rate_limits_forget()
    job = ChargeJob(
        order_id=1, payment_id=1, attempt=1, idempotency_key=f"k-{uuid.uuid4()}", amount=500,
        currency="CNY", reference=str(uuid.uuid4()), customer="c-1", ask_first=False,
    )  # fmt: skip
    # a client of its own: the workers' shared one must stay open for the tests after this one
    with GatewayClient(
        base_url=settings.PAYMENT_GATEWAY_URL, api_key=settings.PAYMENT_GATEWAY_KEY
    ) as client:
        # when / then: with the batch's token the charge goes out; without, it waits unsent
        assert payment_attempt(client, job, True).kind == "succeeded"
        waited = payment_attempt(client, dataclasses.replace(job, idempotency_key="other"))
        # an attempt that asks the gateway first spends the token on the question; its charge
        # then needs a token of its own
        unknown = dataclasses.replace(job, idempotency_key="third", reference=str(uuid.uuid4()))
        asked = payment_attempt(client, dataclasses.replace(unknown, ask_first=True), True)
    assert (waited.kind, waited.error) == ("retry", UNSENT)
    assert (asked.kind, asked.error) == ("retry", UNSENT)


# --- The price charged -------------------------------------------------------------------------


def test_an_order_is_charged_the_prices_it_was_placed_at(chatbot, gateway) -> None:
    # given: two cups placed at 30 yuan each, with a 25 yuan coupon
    tea = ProductFactory(price=3000)
    campaign = CampaignFactory(max_discount=2500)
    order = place(chatbot, "c-1", [(tea, 2)], coupon=claim(chatbot, campaign, "c-1"))
    # when: staff raise the price before the worker reserves it, then it is reserved and paid
    shop_services.product_put(
        sku=tea.sku,
        name=tea.name,
        store_id=tea.store_id,
        price=4000,
        stock_total=tea.stock_total,
        actor="staff:test",
    )
    services.reservations_drain(campaign_id=campaign.pk)
    services.payments_drain()
    # then: charged what intake answered (docs/integrator-guide.md), not the new price
    order.refresh_from_db()
    charges = ledger(gateway)["charges"]
    assert order.status == Order.Status.PAID
    assert order.payable == 2 * 3000 - 2500
    assert [(c["reference"], c["amount"]) for c in charges] == [
        (str(order.public_id), 2 * 3000 - 2500)
    ]


# --- A record claims the next batch in its transaction ----------------------------------------

PAID = ChargeOutcome(kind="succeeded", charge_id="ch_test")


@pytest.fixture
def two_reserved(chatbot) -> list[Order]:
    tea = ProductFactory(price=3000)
    campaign = CampaignFactory()
    orders = [
        place(chatbot, customer, [(tea, 1)], coupon=claim(chatbot, campaign, customer))
        for customer in ("c-1", "c-2")
    ]
    services.reservations_drain(campaign_id=campaign.pk)
    assert Order.objects.filter(status=Order.Status.RESERVED).count() == 2
    return orders


def test_a_record_claims_the_next_batch_in_its_transaction(two_reserved) -> None:
    # given: the first order claimed and charged
    first, second = two_reserved
    (job,) = services.payments_claim_batch(limit=1).jobs
    assert job.order_id == first.pk
    # when: its outcome is recorded, claiming the next batch in the same transaction
    counts, following = services.payments_record_and_claim([(job, PAID)], limit=1)
    # then: the first is paid, the second claimed as a claim of its own would (its payment
    # pending under a lease, a first attempt, its hold's clock started), ready to be sent
    assert counts["succeeded"] == 1
    assert Order.objects.get(pk=first.pk).status == Order.Status.PAID
    (next_job,) = following.jobs
    assert (next_job.order_id, next_job.attempt, next_job.ask_first) == (second.pk, 1, False)
    payment = Payment.objects.get(order=second)
    assert (payment.pk, payment.status) == (next_job.payment_id, Payment.Status.PENDING)
    assert payment.next_attempt_at > timezone.now()
    assert Reservation.objects.get(order=second).expires_at is not None
    # and recording it pays it, claiming nothing more
    counts, after = services.payments_record_and_claim([(next_job, PAID)], limit=1)
    assert Order.objects.get(pk=second.pk).status == Order.Status.PAID
    assert (after.jobs, after.settled_free) == ([], 0)


def test_a_claim_that_fails_after_a_record_leaves_the_record_whole(
    two_reserved, monkeypatch
) -> None:
    # given: the first order claimed and charged, and a claim that fails (a bug, say)
    first, second = two_reserved
    (job,) = services.payments_claim_batch(limit=1).jobs

    def broken(**_):
        raise RuntimeError("claim failed")

    monkeypatch.setattr("orders.services.settlement._claim", broken)
    # when
    counts, following = services.payments_record_and_claim([(job, PAID)], limit=1)
    # then: the outcome is recorded and its hold closed; nothing was claimed, so the second
    # order waits for the next step's own claim, with no payment yet
    assert counts["succeeded"] == 1
    assert Order.objects.get(pk=first.pk).status == Order.Status.PAID
    assert Reservation.objects.get(order=first).outcome == Reservation.Outcome.SOLD
    assert following.jobs == []
    assert not Payment.objects.filter(order=second).exists()
