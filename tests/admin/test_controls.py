"""The controls: each asks for confirmation, changes state through its service, and is recorded
in the audit log with who, what, before and after. Pause means pause, through the API too."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
from django.conf import settings
from django.utils import timezone

from coupons.models import Campaign, Coupon, CouponSlice
from coupons.selectors import campaign_coupons_issued
from orders import services
from orders.gateway.client import ChargeOutcome, RefundOutcome
from orders.models import CallbackDelivery, Order, OrderEvent, Payment, Reservation
from orders.services import settlement
from shop.models import AuditEntry, Product, RateLimit, RateLimitChange
from tests.admin.conftest import Scene, charge, figures
from tests.factories.orders import claim, place

if TYPE_CHECKING:
    import httpx
    from django.test import Client
    from rest_framework.test import APIClient

    from shop.models import ApiClient

pytestmark = pytest.mark.django_db


def campaign_url(scene: Scene, rest: str) -> str:
    return f"/admin/coupons/campaign/{scene.campaign.pk}/{rest}"


def audit(action: str) -> list[tuple[str, str, dict, dict]]:
    return [
        (e.actor, e.target_id, e.before, e.after)
        for e in AuditEntry.objects.filter(action=action).order_by("id")
    ]


def status_of(scene: Scene) -> str:
    return Campaign.objects.get(pk=scene.campaign.pk).status


# --- Pause and resume ---------------------------------------------------------------------------


def test_pause_asks_first_then_pauses_and_is_audited(operator: Client, scene: Scene) -> None:
    # given
    url = campaign_url(scene, "status/pause/")
    # when
    asked = operator.get(url)
    status_when_asked = status_of(scene)
    done = operator.post(url, {"confirm": "yes"}, follow=True)
    # then
    assert asked.status_code == 200
    assert "New claims and orders will be answered campaign_not_active" in asked.content.decode()
    assert status_when_asked == Campaign.Status.ACTIVE
    assert status_of(scene) == Campaign.Status.PAUSED
    assert [str(m) for m in done.context["messages"]] == ["Paused: spring."]
    assert figures(done)["public-status"] == "paused"
    assert audit("campaign.pause") == [
        ("staff:otto", str(scene.campaign.pk), {"status": "active"}, {"status": "paused"})
    ]


def test_a_post_without_the_confirmation_only_asks(operator: Client, scene: Scene) -> None:
    # given / when
    response = operator.post(campaign_url(scene, "status/pause/"))
    # then
    assert response.status_code == 200
    assert status_of(scene) == Campaign.Status.ACTIVE
    assert not AuditEntry.objects.exists()


def test_paused_campaigns_refuse_new_claims_and_orders_while_orders_in_flight_finish(
    operator: Client, scene: Scene, api: APIClient, chatbot: ApiClient
) -> None:
    # given: c5 holds (its payment due later), c8 waits in line, c10 has a coupon unused
    coupon = Coupon.objects.get(campaign=scene.campaign, customer_id="c10")
    operator.post(campaign_url(scene, "status/pause/"), {"confirm": "yes"})
    # when
    claim_answer = api.post(
        f"/api/v1/campaigns/{scene.campaign.slug}/claims/",
        {"customer_id": "new-customer"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
    )
    order_answer = api.post(
        "/api/v1/orders/",
        {
            "customer_id": "c10",
            "items": [{"sku": scene.tea.sku, "quantity": 1}],
            "coupon_code": coupon.code,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
    )
    services.reservations_take_batch(campaign_id=scene.campaign.pk, limit=100)
    Payment.objects.filter(order=scene.orders["c5"]).update(next_attempt_at=timezone.now())
    charge({scene.orders["c5"].pk: ChargeOutcome(kind="succeeded", charge_id="ch_5")})
    # then
    assert (claim_answer.status_code, claim_answer.json()["error"]) == (409, "campaign_not_active")
    assert (order_answer.status_code, order_answer.json()["error"]) == (409, "campaign_not_active")
    assert Order.objects.get(pk=scene.orders["c8"].pk).status == Order.Status.RECEIVED
    assert Order.objects.get(pk=scene.orders["c5"].pk).status == Order.Status.PAID
    assert not Order.objects.filter(customer_id="c10").exists()


def test_resume_takes_claims_again_and_is_audited(
    operator: Client, scene: Scene, api: APIClient
) -> None:
    # given
    operator.post(campaign_url(scene, "status/pause/"), {"confirm": "yes"})
    # when
    operator.post(campaign_url(scene, "status/resume/"), {"confirm": "yes"})
    answer = api.post(
        f"/api/v1/campaigns/{scene.campaign.slug}/claims/",
        {"customer_id": "new-customer"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
    )
    # then
    assert status_of(scene) == Campaign.Status.ACTIVE
    assert answer.status_code == 201
    assert audit("campaign.resume") == [
        ("staff:otto", str(scene.campaign.pk), {"status": "paused"}, {"status": "active"})
    ]


def test_the_changelist_actions_are_audited_too(operator: Client, scene: Scene) -> None:
    # given / when
    operator.post(
        "/admin/coupons/campaign/",
        {"action": "pause", "_selected_action": [str(scene.campaign.pk)]},
    )
    operator.post(
        "/admin/orders/order/",
        {"action": "cancel", "_selected_action": [str(scene.orders["c8"].pk)]},
    )
    # then
    assert audit("campaign.pause") == [
        ("staff:otto", str(scene.campaign.pk), {"status": "active"}, {"status": "paused"})
    ]
    assert audit("order.cancel") == [
        ("staff:otto", str(scene.orders["c8"].pk), {"status": "received"}, {"status": "cancelled"})
    ]


def test_viewers_cannot_pause_even_through_the_changelist(viewer: Client, scene: Scene) -> None:
    # given / when
    page = viewer.post(campaign_url(scene, "status/pause/"), {"confirm": "yes"})
    listing = viewer.post(
        "/admin/coupons/campaign/",
        {"action": "pause", "_selected_action": [str(scene.campaign.pk)]},
    )
    # then
    assert page.status_code == 403
    assert listing.status_code in (200, 403)
    assert status_of(scene) == Campaign.Status.ACTIVE
    assert not AuditEntry.objects.exists()


# --- Limits ---------------------------------------------------------------------------------


def limits_form(**changes: object) -> dict[str, object]:
    form: dict[str, object] = {"per_customer_limit": 1, "backlog_ceiling": ""}
    for scope, (per_second, burst) in settings.RATE_LIMIT_DEFAULTS.items():
        form[f"{scope}_per_second"] = "" if per_second is None else per_second
        form[f"{scope}_burst"] = burst
    form.update(changes)
    return form


def test_limits_are_reviewed_then_changed_and_audited(operator: Client, scene: Scene) -> None:
    # given
    url = campaign_url(scene, "limits/")
    form = limits_form(per_customer_limit=3, backlog_ceiling=5000, gateway_per_second=120)
    # when
    review = operator.post(url, form)
    unchanged = Campaign.objects.get(pk=scene.campaign.pk)
    operator.post(url, {**form, "confirm": "yes"})
    # then
    assert review.status_code == 200
    shown = figures(review)
    assert shown["per_customer_limit"] == "1 → 3"
    assert shown["backlog_ceiling"] == "None → 5000"
    assert shown["gateway"] == "unlimited, burst 1 → 120/s, burst 1"
    assert (unchanged.per_customer_limit, unchanged.backlog_ceiling) == (1, None)
    campaign = Campaign.objects.get(pk=scene.campaign.pk)
    assert (campaign.per_customer_limit, campaign.backlog_ceiling) == (3, 5000)
    assert RateLimit.objects.get(scope="gateway").per_second == 120
    assert RateLimitChange.objects.get(scope="gateway").actor == "staff:otto"
    assert audit("campaign.limits") == [
        (
            "staff:otto",
            str(scene.campaign.pk),
            {"per_customer_limit": 1, "backlog_ceiling": None},
            {"per_customer_limit": 3, "backlog_ceiling": 5000},
        )
    ]
    assert audit("rate_limit.change") == [
        (
            "staff:otto",
            "gateway",
            {"per_second": None, "burst": 1},
            {"per_second": 120.0, "burst": 1},
        )
    ]


def test_limits_out_of_range_are_refused(operator: Client, scene: Scene) -> None:
    # given / when
    response = operator.post(
        campaign_url(scene, "limits/"), {**limits_form(per_customer_limit=0), "confirm": "yes"}
    )
    # then
    assert response.status_code == 200  # the form again, with its error
    assert "Ensure this value is greater than or equal to 1." in response.content.decode()
    assert Campaign.objects.get(pk=scene.campaign.pk).per_customer_limit == 1
    assert not AuditEntry.objects.exists()


def test_the_coupon_stock_is_raised_over_the_slices_and_audited(
    operator: Client, scene: Scene
) -> None:
    # given: 50 coupons, 10 issued
    url = campaign_url(scene, "limits/")
    form = limits_form(coupons_total=80)
    # when
    review = operator.post(url, form)
    operator.post(url, {**form, "confirm": "yes"})
    # then: the new room is shared out over the slices, each keeping what it issued
    assert figures(review)["coupons_total"] == "50 → 80"
    assert Campaign.objects.get(pk=scene.campaign.pk).coupons_total == 80
    caps = CouponSlice.objects.filter(campaign=scene.campaign).values_list("issued", "cap")
    assert sum(cap for _, cap in caps) == 80
    assert sorted({cap - issued for issued, cap in caps}) == [4, 5]
    assert campaign_coupons_issued(campaign_id=scene.campaign.pk) == 10
    assert audit("campaign.totals") == [
        ("staff:otto", str(scene.campaign.pk), {"coupons_total": 50}, {"coupons_total": 80})
    ]


def test_the_coupon_stock_below_the_coupons_issued_is_refused_with_every_change(
    operator: Client, scene: Scene
) -> None:
    # given / when: 10 coupons issued, a stock of 9 asked with a new per-customer limit
    response = operator.post(
        campaign_url(scene, "limits/"),
        {**limits_form(coupons_total=9, per_customer_limit=4), "confirm": "yes"},
        follow=True,
    )
    # then: refused, and nothing changed
    assert "10 coupons are already issued; the total cannot be 9." in response.content.decode()
    campaign = Campaign.objects.get(pk=scene.campaign.pk)
    assert (campaign.coupons_total, campaign.per_customer_limit) == (50, 1)
    assert not AuditEntry.objects.exists()


def test_editing_the_campaign_record_is_audited(operator: Client, scene: Scene) -> None:
    # given
    campaign = Campaign.objects.get(pk=scene.campaign.pk)
    local = {
        name: timezone.localtime(getattr(campaign, name))
        for name in ["starts_at", "ends_at", "coupon_valid_until"]
    }
    form = {
        f"{name}_{i}": value
        for name, at in local.items()
        for i, value in enumerate([at.strftime("%Y-%m-%d"), at.strftime("%H:%M:%S.%f")])
    }
    # when
    response = operator.post(
        f"/admin/coupons/campaign/{campaign.pk}/change/",
        {
            "slug": "spring",
            "name": "Spring",
            "per_customer_limit": 2,
            "backlog_ceiling": "",
            **form,
            "events-TOTAL_FORMS": 0,
            "events-INITIAL_FORMS": 0,
        },
    )
    # then
    assert response.status_code == 302
    assert Campaign.objects.get(pk=campaign.pk).per_customer_limit == 2
    assert campaign_coupons_issued(campaign_id=campaign.pk) == 10
    [(actor, _, before, after)] = audit("campaign.edit")
    assert (actor, before["per_customer_limit"], after["per_customer_limit"]) == (
        "staff:otto",
        1,
        2,
    )


def test_rate_limits_changed_in_their_own_admin_are_audited(operator: Client, db: None) -> None:
    # given / when
    response = operator.post(
        "/admin/shop/ratelimit/add/", {"scope": "callbacks", "per_second": 50, "burst": 5}
    )
    # then
    assert response.status_code == 302
    assert audit("rate_limit.change") == [
        (
            "staff:otto",
            "callbacks",
            {"per_second": None, "burst": 1},
            {"per_second": 50.0, "burst": 5},
        )
    ]


# --- Dead work ------------------------------------------------------------------------------


def park_payment(order: Order) -> None:
    for _ in range(settings.PAYMENT_MAX_ATTEMPTS):
        Payment.objects.filter(order=order).update(next_attempt_at=timezone.now())
        charge({order.pk: ChargeOutcome(kind="unknown", error="HTTP 503")})
    assert Payment.objects.get(order=order).status == Payment.Status.PARKED


def test_replay_parked_payments(operator: Client, viewer: Client, scene: Scene) -> None:
    # given
    order = scene.orders["c5"]
    park_payment(order)
    url = "/admin/orders/order/backlog/replay/payments/"
    # when
    refused = viewer.post(url, {"confirm": "yes"})
    asked = operator.get(url)
    done = operator.post(url, {"confirm": "yes"}, follow=True)
    # then
    assert refused.status_code == 403
    assert figures(asked)["count"] == "1"
    assert [str(m) for m in done.context["messages"]] == ["1 parked payment(s) replayed."]
    assert Payment.objects.get(order=order).status == Payment.Status.UNKNOWN
    assert audit("payments.replay") == [
        (
            "staff:otto",
            "",
            {"status": "parked", "orders": [order.pk]},
            {"status": "unknown", "replayed": 1},
        )
    ]


def test_replay_failed_callbacks_and_parked_orders(operator: Client, scene: Scene) -> None:
    # given
    delivery = CallbackDelivery.objects.create(
        order=scene.orders["c1"], url="https://bot.example/cb", order_status="paid", payload={}
    )
    CallbackDelivery.objects.filter(pk=delivery.pk).update(state=CallbackDelivery.State.FAILED)
    parked = scene.orders["c9"]
    services.order_park(order_id=parked.pk, reason="ValueError: bad")
    # when
    operator.post("/admin/orders/order/backlog/replay/callbacks/", {"confirm": "yes"})
    operator.post("/admin/orders/order/backlog/replay/orders/", {"confirm": "yes"})
    # then
    assert CallbackDelivery.objects.get(pk=delivery.pk).state == CallbackDelivery.State.PENDING
    assert Order.objects.get(pk=parked.pk).parked_at is None
    assert [a[3] for a in audit("callbacks.replay")] == [{"state": "pending", "replayed": 1}]
    assert [a[2:] for a in audit("orders.unpark")] == [
        ({"parked": [parked.pk]}, {"returned_to_line": 1})
    ]


# --- Cancel and refund ------------------------------------------------------------------------


def test_cancel_an_unpaid_order_releases_what_it_held(
    operator: Client, viewer: Client, scene: Scene
) -> None:
    # given: c6 holds 2 units, its coupon and 2500 of budget (its payment waits for a retry)
    order = scene.orders["c6"]
    url = f"/admin/orders/order/{order.pk}/cancel/"
    stock = Product.objects.get(pk=scene.tea.pk).stock
    held = Campaign.objects.get(pk=scene.campaign.pk).budget_held
    # when
    refused = viewer.post(url, {"confirm": "yes"})
    asked = operator.get(url)
    operator.post(url, {"confirm": "yes"})
    # then
    assert refused.status_code == 403
    assert "its units back to stock" in asked.content.decode()
    assert Order.objects.get(pk=order.pk).status == Order.Status.CANCELLED
    assert Product.objects.get(pk=scene.tea.pk).stock == stock + 2
    assert Campaign.objects.get(pk=scene.campaign.pk).budget_held == held - 2500
    assert Coupon.objects.get(pk=order.coupon_id).status == Coupon.Status.ISSUED
    assert audit("order.cancel") == [
        ("staff:otto", str(order.pk), {"status": "reserved"}, {"status": "cancelled"})
    ]


def test_a_paid_order_is_not_cancelled(operator: Client, scene: Scene) -> None:
    # given / when
    done = operator.post(
        f"/admin/orders/order/{scene.orders['c1'].pk}/cancel/", {"confirm": "yes"}, follow=True
    )
    # then
    assert [str(m) for m in done.context["messages"]] == ["Not cancelled: The order is paid."]
    assert Order.objects.get(pk=scene.orders["c1"].pk).status == Order.Status.PAID
    assert not AuditEntry.objects.exists()


def paid_at_the_gateway(chatbot: ApiClient, scene: Scene, customer: str) -> Order:
    """An order charged by the sandbox gateway, as the settlement worker charges it."""
    coupon = claim(chatbot, scene.campaign, customer)
    order = place(chatbot, customer, [(scene.tea, 3)], coupon=coupon)  # 5400 - 2500 = 2900
    services.reservations_take_batch(campaign_id=scene.campaign.pk, limit=100)
    Payment.objects.exclude(status=Payment.Status.SUCCEEDED).delete()  # the scene's own
    claimed = services.payments_claim_batch(limit=100)
    outcomes = [settlement.payment_attempt(settlement.gateway(), job) for job in claimed.jobs]
    services.payments_record(list(zip(claimed.jobs, outcomes, strict=True)))
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    return order


def test_refund_a_paid_order_through_the_gateway(
    operator: Client, viewer: Client, scene: Scene, chatbot: ApiClient, gateway: httpx.Client
) -> None:
    # given
    order = paid_at_the_gateway(chatbot, scene, "r1")
    charge_id = Payment.objects.get(order=order).charge_id
    spent = Campaign.objects.get(pk=scene.campaign.pk).budget_spent
    url = f"/admin/orders/order/{order.pk}/refund/"
    # when
    refused = viewer.post(url, {"confirm": "yes"})
    asked = operator.get(url)
    done = operator.post(url, {"confirm": "yes"}, follow=True)
    again = operator.post(url, {"confirm": "yes"}, follow=True)
    # then
    assert refused.status_code == 403
    assert "The gateway refunds ¥29.00 of the charge" in asked.content.decode()
    assert [str(m) for m in done.context["messages"]] == [
        f"Refunded: {order.public_id} (¥29.00 back to the customer, ¥25.00 back to the "
        "campaign's budget)."
    ]
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert Campaign.objects.get(pk=scene.campaign.pk).budget_spent == spent - 2500
    assert Coupon.objects.get(pk=order.coupon_id).status == Coupon.Status.REDEEMED
    assert Reservation.objects.get(order=order).outcome == Reservation.Outcome.SOLD
    refunds = gateway.get("/_sandbox/ledger").json()["refunds"]
    assert [(r["charge"], r["amount"], r["status"]) for r in refunds] == [
        (charge_id, 2900, "succeeded")
    ]
    assert again.status_code == 200  # asking again refunds nothing more
    [(actor, target, before, after)] = audit("order.refund")
    assert (actor, target, before) == ("staff:otto", str(order.pk), {"status": "paid"})
    assert after["status"] == "refunded"
    assert (after["amount"], after["discount_returned"]) == (2900, 2500)
    assert list(
        OrderEvent.objects.filter(order=order, target__startswith="refund").values_list(
            "target", flat=True
        )
    ) == ["refund:pending", "refunded"]


def test_an_unknown_refund_outcome_leaves_the_order_paid_and_is_safe_to_retry(
    operator: Client,
    scene: Scene,
    chatbot: ApiClient,
    gateway: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: the gateway's answers get lost three times
    order = paid_at_the_gateway(chatbot, scene, "r2")
    url = f"/admin/orders/order/{order.pk}/refund/"
    client = settlement.gateway()
    real_refund = client.refund
    monkeypatch.setattr("orders.services.settlement.REFUND_RETRY_SECONDS", 0.0)
    monkeypatch.setattr(
        client, "refund", lambda **kwargs: RefundOutcome("unknown", error="ReadTimeout")
    )
    # when
    lost = operator.post(url, {"confirm": "yes"}, follow=True)
    status_after_lost = Order.objects.get(pk=order.pk).status
    monkeypatch.setattr(client, "refund", real_refund)
    operator.post(url, {"confirm": "yes"})
    # then
    [said] = [str(m) for m in lost.context["messages"]]
    assert said.startswith("Not refunded: The gateway gave no definite answer")
    assert status_after_lost == Order.Status.PAID
    assert Order.objects.get(pk=order.pk).status == Order.Status.REFUNDED
    assert len(gateway.get("/_sandbox/ledger").json()["refunds"]) == 1
    assert list(
        OrderEvent.objects.filter(order=order, target__startswith="refund").values_list(
            "target", flat=True
        )
    ) == ["refund:pending", "refund:unknown", "refund:pending", "refunded"]


def test_only_a_paid_order_is_refunded(operator: Client, scene: Scene) -> None:
    # given / when
    done = operator.post(
        f"/admin/orders/order/{scene.orders['c5'].pk}/refund/", {"confirm": "yes"}, follow=True
    )
    # then
    assert [str(m) for m in done.context["messages"]] == ["Not refunded: The order is reserved."]
    assert not AuditEntry.objects.exists()


def test_the_audit_log_is_shown_and_read_only(operator: Client, scene: Scene) -> None:
    # given
    operator.post(campaign_url(scene, "status/pause/"), {"confirm": "yes"})
    entry = AuditEntry.objects.get()
    # when
    listing = operator.get("/admin/shop/auditentry/")
    campaign_page = operator.get(campaign_url(scene, "dashboard/"))
    # then
    assert '<td class="field-action">campaign.pause</td>' in listing.content.decode()
    assert "campaign.pause" in campaign_page.content.decode()
    assert operator.get("/admin/shop/auditentry/add/").status_code == 403
    assert operator.post(f"/admin/shop/auditentry/{entry.pk}/delete/").status_code == 403
