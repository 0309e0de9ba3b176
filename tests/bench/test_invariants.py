"""The benchmark's invariant checks (bench/invariants.py) catch what they are for: each breach
is planted in the test database (or in a fake gateway ledger) and must be reported, and a
clean state must report nothing. Orders are made through the real services; constraints
that would stop a plant are dropped inside the test's transaction, which rolls back."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.db import connection

from bench.invariants import Violation, check_invariants, summarize
from coupons.models import Campaign, CouponSlice
from orders import services
from orders.gateway.client import ChargeOutcome
from orders.models import Order
from shop.models import ApiClient, Product
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db


@dataclass
class Burst:
    """One paid order (3,000 fen, 2,500 off: the gateway charged 500) and its ledger."""

    campaign: Campaign
    product: Product
    paid: Order
    ledger: dict[str, list[dict[str, object]]]


def charge(order: Order, charge_id: str, status: str = "succeeded") -> dict[str, object]:
    return {"id": charge_id, "status": status, "reference": str(order.public_id), "amount": 500}


@pytest.fixture
def burst(chatbot: ApiClient) -> Burst:
    # given: a campaign and a product, one order placed with a claimed coupon, reserved,
    # charged at the gateway and recorded paid, the way the workers do it
    campaign = CampaignFactory(coupons_total=10, budget_total=25_000)
    product = ProductFactory(price=3000, stock=5)
    coupon = claim(chatbot, campaign, "c-1")
    order = place(chatbot, "c-1", [(product, 1)], coupon=coupon)
    services.reservations_take_batch(campaign_id=campaign.pk, limit=10)
    jobs = services.payments_claim_batch(limit=10).jobs
    services.payments_record(
        [(job, ChargeOutcome(kind="succeeded", charge_id="ch_1")) for job in jobs]
    )
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    return Burst(campaign, product, order, {"charges": [charge(order, "ch_1")]})


def checks(found: list[Violation]) -> dict[str, int]:
    return {check: n for check, n in summarize(found).items() if n}


def drop_constraint(table: str, name: str) -> None:
    """Drop a CHECK for this test only: its transaction rolls back. Deferred foreign-key
    checks still pending would block ALTER TABLE, so they run first."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")


def test_a_clean_run_reports_nothing(burst: Burst) -> None:
    # when
    found = check_invariants(connection, burst.ledger, [str(burst.paid.public_id)])
    # then
    assert found == []


def test_the_ledger_may_be_fetched_after_the_database_is_read(burst: Burst) -> None:
    # given: a ledger the checks fetch themselves, after their queries
    calls: list[int] = []

    def ledger() -> dict[str, list[dict[str, object]]]:
        calls.append(1)
        return burst.ledger

    # when
    found = check_invariants(connection, ledger, [str(burst.paid.public_id)])
    # then
    assert found == []
    assert calls == [1]


def test_units_sold_beyond_what_existed_are_an_oversell(burst: Burst) -> None:
    # given: the one unit sold was more than the product ever had
    Product.objects.filter(pk=burst.product.pk).update(stock=0, stock_total=0)
    # when
    found = check_invariants(connection, burst.ledger)
    # then: oversold, and the units gone from stock no longer add up
    assert checks(found) == {"stock": 2}
    assert any("oversold by 1" in v.detail for v in found)


def test_negative_stock_is_an_oversell(burst: Burst) -> None:
    # given: the constraint that forbids it is gone (this transaction only)
    drop_constraint("shop_product", "product_stock_not_negative")
    Product.objects.filter(pk=burst.product.pk).update(stock=-1)
    # when
    found = check_invariants(connection, burst.ledger)
    # then
    assert {v.check for v in found} == {"stock"}
    assert any("stock -1 outside" in v.detail for v in found)


def test_a_campaign_over_its_budget_is_reported(burst: Burst) -> None:
    # given: counters that hold more than the budget (the CHECK dropped for the plant)
    drop_constraint("coupons_campaign", "campaign_within_budget")
    Campaign.objects.filter(pk=burst.campaign.pk).update(budget_held=25_000)
    # when
    found = check_invariants(connection, burst.ledger)
    # then
    assert checks(found) == {"budget": 2}  # over the budget, and out of step with the holds
    assert any("over by 2500" in v.detail for v in found)


def test_paid_discounts_beyond_the_budget_are_reported(burst: Burst) -> None:
    # given: a budget smaller than the discount already spent, counters emptied to match
    Campaign.objects.filter(pk=burst.campaign.pk).update(
        budget_total=1000, budget_spent=0, budget_held=0
    )
    # when
    found = check_invariants(connection, burst.ledger)
    # then
    assert any("2500 of paid orders > 1000 budget" in v.detail for v in found)


def test_more_coupons_than_the_campaign_had_are_reported(burst: Burst) -> None:
    # given: a total below the coupons issued, the slices' caps left as they were (the
    # trigger checking the caps' sum dropped for the plant)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the checks already queued, first
        cursor.execute("DROP TRIGGER coupon_total_sum_of_slices ON coupons_campaign")
    Campaign.objects.filter(pk=burst.campaign.pk).update(coupons_total=0)
    # when
    found = check_invariants(connection, burst.ledger)
    # then
    assert checks(found) == {"coupons": 1}
    assert any("1 coupon rows" in v.detail and "0 total" in v.detail for v in found)


def test_a_slice_over_its_cap_is_reported(burst: Burst) -> None:
    # given: one slice counting more than its cap (the CHECK dropped for the plant)
    drop_constraint("coupons_couponslice", "coupon_slice_within_cap")
    piece = CouponSlice.objects.filter(campaign=burst.campaign).order_by("number").first()
    CouponSlice.objects.filter(pk=piece.pk).update(issued=piece.cap + 1)
    # when
    found = check_invariants(connection, burst.ledger)
    # then: over its cap, and the slices out of step with the coupon rows
    assert checks(found) == {"coupons": 2}
    assert any(f"slice 0: {piece.cap + 1} issued > cap {piece.cap}" in v.detail for v in found)


def test_two_succeeded_charges_for_one_order_are_a_double_charge(burst: Burst) -> None:
    # given: the gateway's ledger shows a second successful charge for the paid order
    ledger = {"charges": [*burst.ledger["charges"], charge(burst.paid, "ch_2")]}
    # when
    found = check_invariants(connection, ledger)
    # then
    assert checks(found) == {"charges": 1}
    assert "double charge" in found[0].detail


def test_a_declined_retry_is_not_a_double_charge(burst: Burst) -> None:
    # given
    ledger = {"charges": [charge(burst.paid, "ch_0", "declined"), *burst.ledger["charges"]]}
    # when / then
    assert check_invariants(connection, ledger) == []


def test_a_paid_order_the_gateway_never_charged_is_reported(burst: Burst) -> None:
    # when
    found = check_invariants(connection, {"charges": []})
    # then
    assert checks(found) == {"charges": 1}
    assert "no succeeded charge" in found[0].detail


def test_a_charge_for_an_order_that_is_not_paid_is_reported(
    burst: Burst, chatbot: ApiClient
) -> None:
    # given: an order still waiting in line, yet charged at the gateway
    waiting = place(chatbot, "c-2", [(burst.product, 1)])
    ledger = {"charges": [*burst.ledger["charges"], charge(waiting, "ch_9")]}
    # when
    found = check_invariants(connection, ledger)
    # then
    assert checks(found) == {"charges": 1}
    assert "received, yet the gateway kept its charge ch_9" in found[0].detail


def test_a_charge_kept_for_an_order_that_ended_unpaid_is_reported_until_refunded(
    burst: Burst, chatbot: ApiClient
) -> None:
    # given: an order cancelled while it held its unit, yet charged at the gateway
    order = place(chatbot, "c-2", [(burst.product, 1)])
    services.reservations_take_batch(campaign_id=None, limit=10)
    services.order_cancel(client_id=chatbot.pk, public_id=str(order.public_id), actor="test")
    kept = charge(order, "ch_9")
    refunded = {**kept, "amount_refunded": kept["amount"]}
    # when
    found = check_invariants(connection, {"charges": [*burst.ledger["charges"], kept]})
    after_refund = check_invariants(connection, {"charges": [*burst.ledger["charges"], refunded]})
    # then: reported while the gateway keeps the money, and not once it gave it back
    assert checks(found) == {"charges": 1}
    assert "cancelled, yet the gateway kept its charge ch_9" in found[0].detail
    assert after_refund == []


def test_a_refunded_order_whose_charge_the_gateway_kept_is_reported(burst: Burst) -> None:
    # given: the paid order is recorded refunded, but its charge was never refunded (its
    # budget not given back either: that check has its own tests)
    Order.objects.filter(pk=burst.paid.pk).update(status=Order.Status.REFUNDED)
    # when
    found = [v for v in check_invariants(connection, burst.ledger) if v.check == "charges"]
    # then
    assert [v.detail for v in found] == [
        "refunded, yet the gateway kept its charge ch_1 (not refunded)"
    ]


def test_an_accepted_order_that_never_finished_is_reported(
    burst: Burst, chatbot: ApiClient
) -> None:
    # given: the load generator saw this order accepted; it is still in line
    waiting = place(chatbot, "c-2", [(burst.product, 1)])
    accepted = [str(burst.paid.public_id), str(waiting.public_id)]
    # when
    found = check_invariants(connection, burst.ledger, accepted)
    # then
    assert checks(found) == {"terminal": 1}
    assert found[0].subject == f"order {waiting.public_id}"
    assert "still received" in found[0].detail


def test_an_accepted_order_missing_from_the_database_is_reported(burst: Burst) -> None:
    # given
    lost = "00000000-0000-4000-8000-000000000000"
    # when
    found = check_invariants(connection, burst.ledger, [str(burst.paid.public_id), lost])
    # then
    assert checks(found) == {"terminal": 1}
    assert "not in the database" in found[0].detail


def test_a_row_naming_a_missing_parent_is_an_orphan(burst: Burst) -> None:
    # given: the order names a client, the line a product, the hold a coupon and an event an
    # order that do not exist (no database key stops it: docs/architecture.md, References
    # without database keys)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE orders_reservation SET coupon_id = (SELECT max(id) + 1 FROM coupons_coupon)"
            " WHERE order_id = %s",
            [burst.paid.pk],
        )
        cursor.execute(
            "INSERT INTO orders_orderevent (order_id, source, target, actor, data, created_at)"
            " SELECT max(id) + 1, 'received', 'received', 'test', '{}', now() FROM orders_order"
        )
        cursor.execute(
            "UPDATE orders_order SET client_id = (SELECT max(id) + 1 FROM shop_apiclient)"
            " WHERE id = %s",
            [burst.paid.pk],
        )
        cursor.execute(
            "UPDATE orders_orderline SET product_id = (SELECT max(id) + 1 FROM shop_product)"
            " WHERE order_id = %s",
            [burst.paid.pk],
        )
    # when
    found = check_invariants(connection, burst.ledger, [str(burst.paid.public_id)])
    # then: all four are reported (the unit sold of a product that is not there is a stock
    # breach of its own)
    assert checks(found) == {"references": 4, "stock": 1}
    assert {v.subject.split()[0] for v in found if v.check == "references"} == {
        "orders_order",
        "orders_orderline",
        "orders_reservation",
        "orders_orderevent",
    }
