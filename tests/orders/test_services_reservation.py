"""Reservation batches against the real database: every rejection reason, the holds they
take, and the exactly-once release."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from coupons import services as coupons_services
from coupons.errors import CampaignNotActive
from coupons.models import Campaign, Coupon
from orders import selectors, services
from orders.models import ORDER_ALLOWED, Order, OrderEvent, Reservation
from shop.models import Product
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db

R = Order.Reason


def reserve(campaign: Campaign | None) -> services.holds.BatchResult:
    return services.reservations_take_batch(
        campaign_id=campaign.pk if campaign else None, limit=500
    )


def test_every_status_is_in_the_transition_table() -> None:
    # given / when / then
    assert set(ORDER_ALLOWED) == set(Order.Status.values)


def test_reserving_holds_stock_coupon_and_budget(chatbot) -> None:
    # given
    campaign = CampaignFactory(budget_total=10_000)
    tea = ProductFactory(price=1800, stock=10)
    coupon = claim(chatbot, campaign, "c-1")
    order = place(chatbot, "c-1", [(tea, 2)], coupon=coupon)
    # when
    result = reserve(campaign)
    # then
    order.refresh_from_db()
    tea.refresh_from_db()
    campaign.refresh_from_db()
    coupon.refresh_from_db()
    assert result.reserved == 1
    assert order.status == Order.Status.RESERVED
    assert (order.subtotal, order.discount, order.payable) == (3600, 2500, 1100)
    assert tea.stock == 8
    assert campaign.budget_held == 2500
    assert coupon.status == Coupon.Status.RESERVED
    assert Reservation.objects.get(order=order).closed_at is None
    assert list(OrderEvent.objects.filter(order=order).values_list("source", "target")) == [
        ("received", "reserved")
    ]


def test_a_second_run_finds_nothing_to_do(chatbot) -> None:
    # given
    tea = ProductFactory(stock=10)
    place(chatbot, "c-1", [(tea, 1)])
    reserve(None)
    # when
    again = reserve(None)
    # then
    tea.refresh_from_db()
    assert again.seen == 0
    assert tea.stock == 9


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("unknown_coupon", R.COUPON_INVALID),
        ("someone_elses_coupon", R.COUPON_INVALID),
        ("expired_coupon", R.COUPON_EXPIRED),
        ("coupon_already_held", R.COUPON_IN_USE),
        ("limit_lowered", R.LIMIT_REACHED),
        ("no_stock", R.SOLD_OUT),
        ("too_few_units", R.OUT_OF_STOCK),
        ("budget_spent", R.BUDGET_EXHAUSTED),
        ("campaign_ended", R.CAMPAIGN_NOT_ACTIVE),
    ],
)
def test_each_rejection_reason(chatbot, setup: str, reason: str) -> None:
    # given
    campaign = CampaignFactory(per_customer_limit=2, budget_total=10_000)
    tea = ProductFactory(price=1800, stock=5)
    coupon = claim(chatbot, campaign, "c-1")
    kwargs: dict[str, object] = {"coupon": coupon}
    quantity = 1
    if setup == "unknown_coupon":
        kwargs = {"coupon_code": "NOSUCHCODE"}
    elif setup == "someone_elses_coupon":
        kwargs = {"coupon_code": claim(chatbot, campaign, "c-2").code}
    elif setup == "expired_coupon":
        Coupon.objects.filter(pk=coupon.pk).update(
            valid_until=timezone.now() - timedelta(seconds=1)
        )
    elif setup == "coupon_already_held":
        place(chatbot, "c-1", [(tea, 1)], coupon=coupon)
    elif setup == "limit_lowered":
        place(chatbot, "c-1", [(tea, 1)], coupon=claim(chatbot, campaign, "c-1"))
        reserve(campaign)
        Campaign.objects.filter(pk=campaign.pk).update(per_customer_limit=1)
    elif setup == "too_few_units":
        quantity = 5
    order = place(chatbot, "c-1", [(tea, quantity)], **kwargs)
    # What changes while the order waits in line (intake refuses these at once otherwise).
    if setup == "no_stock":
        Product.objects.filter(pk=tea.pk).update(stock=0)
    elif setup == "too_few_units":
        Product.objects.filter(pk=tea.pk).update(stock=4)
    elif setup == "budget_spent":
        Campaign.objects.filter(pk=campaign.pk).update(budget_spent=9_000)
    elif setup == "campaign_ended":
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.ENDED)
    # when
    reserve(order.campaign)
    # then
    order.refresh_from_db()
    assert order.status == Order.Status.REJECTED
    assert order.reason == reason
    assert not Reservation.objects.filter(order=order).exists()


def test_first_come_first_served_within_a_batch(chatbot) -> None:
    # given: three orders for two units
    tea = ProductFactory(stock=2)
    orders = [place(chatbot, f"c-{i}", [(tea, 1)]) for i in range(3)]
    # when
    reserve(None)
    # then
    statuses = [Order.objects.get(pk=o.pk).status for o in orders]
    assert statuses == [Order.Status.RESERVED, Order.Status.RESERVED, Order.Status.REJECTED]


def test_a_paused_campaign_keeps_its_line_waiting(chatbot) -> None:
    # given: paused after the order joined the line
    campaign = CampaignFactory()
    tea = ProductFactory()
    order = place(chatbot, "c-1", [(tea, 1)], coupon=claim(chatbot, campaign, "c-1"))
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)
    # when
    result = reserve(campaign)
    # then
    order.refresh_from_db()
    assert result.seen == 0
    assert order.status == Order.Status.RECEIVED


@pytest.mark.parametrize("status", [Campaign.Status.PAUSED, Campaign.Status.ENDED])
def test_orders_for_an_inactive_campaign_are_refused_at_once(chatbot, status: str) -> None:
    # given
    campaign = CampaignFactory()
    coupon = claim(chatbot, campaign, "c-1")
    Campaign.objects.filter(pk=campaign.pk).update(status=status)
    # when / then
    with pytest.raises(CampaignNotActive):
        place(chatbot, "c-1", [(ProductFactory(), 1)], coupon=coupon)
    assert not Order.objects.exists()


def test_a_resumed_campaigns_line_is_swept_again(chatbot) -> None:
    # given: a paused line is left alone by the sweep
    campaign = CampaignFactory()
    place(chatbot, "c-1", [(ProductFactory(), 1)], coupon=claim(chatbot, campaign, "c-1"))
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)
    assert campaign.pk not in selectors.waiting_campaigns(now=timezone.now())
    # when
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.ACTIVE)
    # then
    assert campaign.pk in selectors.waiting_campaigns(now=timezone.now())


def test_a_paused_campaign_whose_window_ends_drains_its_line(chatbot, gateway) -> None:
    # given: one order holding and one waiting when staff pause the campaign, as the admin does
    campaign = CampaignFactory(budget_total=10_000)
    tea = ProductFactory(price=1800, stock=10)
    holding = place(chatbot, "c-1", [(tea, 1)], coupon=claim(chatbot, campaign, "c-1"))
    reserve(campaign)
    waiting_coupon = claim(chatbot, campaign, "c-2")
    waiting = place(chatbot, "c-2", [(tea, 2)], coupon=waiting_coupon)
    coupons_services.campaign_status_change(
        campaign_id=campaign.pk, status=Campaign.Status.PAUSED, actor="staff:test"
    )
    assert reserve(campaign).seen == 0
    # when: its window ends while it is still paused (the clock moved on)
    now = timezone.now()
    Campaign.objects.filter(pk=campaign.pk).update(
        starts_at=now - timedelta(days=2), ends_at=now - timedelta(seconds=1)
    )
    # then: the sweep drives its line again, and the worker rejects what waits there, as for
    # an ended campaign, with nothing held
    assert campaign.pk in selectors.waiting_campaigns(now=timezone.now())
    result = reserve(campaign)
    waiting.refresh_from_db()
    waiting_coupon.refresh_from_db()
    tea.refresh_from_db()
    assert result.rejected == {R.CAMPAIGN_NOT_ACTIVE: 1}
    assert (waiting.status, waiting.reason) == (Order.Status.REJECTED, R.CAMPAIGN_NOT_ACTIVE)
    assert not Reservation.objects.filter(order=waiting).exists()
    assert waiting_coupon.status == Coupon.Status.ISSUED
    assert tea.stock == 9
    assert campaign.pk not in selectors.waiting_campaigns(now=timezone.now())
    # and the order that held before the pause still completes its payment
    services.payments_drain()
    holding.refresh_from_db()
    assert holding.status == Order.Status.PAID


def test_cancel_releases_everything_once(chatbot) -> None:
    # given
    campaign = CampaignFactory(budget_total=10_000)
    tea = ProductFactory(stock=10)
    coupon = claim(chatbot, campaign, "c-1")
    order = place(chatbot, "c-1", [(tea, 3)], coupon=coupon)
    reserve(campaign)
    # when: cancelled twice
    services.order_cancel(client_id=chatbot.pk, public_id=str(order.public_id), actor="test")
    services.order_cancel(client_id=chatbot.pk, public_id=str(order.public_id), actor="test")
    # then
    tea.refresh_from_db()
    campaign.refresh_from_db()
    coupon.refresh_from_db()
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert tea.stock == 10
    assert campaign.budget_held == 0
    assert coupon.status == Coupon.Status.ISSUED
    assert Reservation.objects.get(order=order).outcome == Reservation.Outcome.RELEASED


def test_holds_past_their_time_expire_and_release(chatbot) -> None:
    # given
    campaign = CampaignFactory(budget_total=10_000)
    tea = ProductFactory(stock=10)
    order = place(chatbot, "c-1", [(tea, 1)], coupon=claim(chatbot, campaign, "c-1"))
    reserve(campaign)
    Reservation.objects.filter(order=order).update(expires_at=timezone.now() - timedelta(seconds=1))
    # when
    expired = services.holds_expire()
    again = services.holds_expire()
    # then
    order.refresh_from_db()
    tea.refresh_from_db()
    campaign.refresh_from_db()
    assert (expired, again) == (1, 0)
    assert order.status == Order.Status.EXPIRED
    assert tea.stock == 10
    assert campaign.budget_held == 0


def test_a_sold_hold_is_closed_and_spent_once(chatbot) -> None:
    # given: two reserved orders with coupons of one campaign
    campaign = CampaignFactory(budget_total=10_000)
    tea = ProductFactory(price=3000, stock=10)
    coupons = [claim(chatbot, campaign, f"c-{i}") for i in range(2)]
    orders = [place(chatbot, f"c-{i}", [(tea, 1)], coupon=c) for i, c in enumerate(coupons)]
    reserve(campaign)
    campaign.refresh_from_db()
    held = campaign.budget_held
    assert held > 0
    locked = list(Order.objects.filter(pk__in=[o.pk for o in orders]))
    now = timezone.now()
    # when: closed as sold, and then again (a replayed record)
    services.holds_close(locked, outcome=Reservation.Outcome.SOLD, now=now)
    services.holds_close(locked, outcome=Reservation.Outcome.SOLD, now=now + timedelta(1))
    # then: the budget moved from held to spent once, each coupon redeemed, each hold closed
    campaign.refresh_from_db()
    assert (campaign.budget_held, campaign.budget_spent) == (0, held)
    assert {c.status for c in Coupon.objects.filter(pk__in=[c.pk for c in coupons])} == {
        Coupon.Status.REDEEMED
    }
    holds = Reservation.objects.filter(order__in=orders)
    assert {(h.outcome, h.closed_at) for h in holds} == {(Reservation.Outcome.SOLD, now)}
    tea.refresh_from_db()
    assert tea.stock == 8
