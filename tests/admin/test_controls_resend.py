"""Resending callbacks from the admin: one order's latest status (a control on its page and an
action on the list) or every order's whose latest status changed in a time range (a form,
then a confirmation). Operators may, viewers may not; each resend is in the audit log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from django.utils import timezone

from orders.models import CallbackDelivery, Order
from shop.models import AuditEntry
from tests.admin.conftest import figures
from tests.factories.orders import place
from tests.factories.shop import ProductFactory

if TYPE_CHECKING:
    from django.test import Client

    from shop.models import ApiClient

pytestmark = pytest.mark.django_db

D = CallbackDelivery.State
LOCAL = "%Y-%m-%dT%H:%M"
RANGE_URL = "/admin/orders/order/callbacks/resend/"


def an_order(chatbot: ApiClient, name: str, *, delivered_at: datetime) -> Order:
    """An order whose latest status (paid) was delivered, its change made at `delivered_at`."""
    order = place(chatbot, name, [(ProductFactory(), 1)], callback_url="https://bot.example/cb")
    row = CallbackDelivery.objects.create(
        order=order,
        url=order.callback_url,
        order_status="paid",
        payload={},
        state=D.DELIVERED,
        attempts=1,
    )
    CallbackDelivery.objects.filter(pk=row.pk).update(created_at=delivered_at)
    return order


def state_of(order: Order) -> str:
    return CallbackDelivery.objects.filter(order=order).latest("id").state


def audit() -> list[tuple[str, str, dict, dict]]:
    return [
        (e.actor, e.target_id, e.before, e.after)
        for e in AuditEntry.objects.filter(action="callbacks.resend").order_by("id")
    ]


def test_one_orders_latest_callback_is_resent_from_its_page(
    operator: Client, viewer: Client, chatbot: ApiClient
) -> None:
    # given
    order = an_order(chatbot, "ann", delivered_at=timezone.now() - timedelta(hours=1))
    url = f"/admin/orders/order/{order.pk}/resend/"
    row = CallbackDelivery.objects.get(order=order)
    # when
    page = operator.get(f"/admin/orders/order/{order.pk}/change/")
    viewed = viewer.get(f"/admin/orders/order/{order.pk}/change/")
    refused = viewer.post(url, {"confirm": "yes"})
    asked = operator.get(url)
    done = operator.post(url, {"confirm": "yes"}, follow=True)
    # then
    assert 'id="control-resend"' in page.content.decode()
    assert 'id="control-resend"' not in viewed.content.decode()
    assert refused.status_code == 403
    assert figures(asked)["event"] == f"evt_{row.pk}"
    assert [str(m) for m in done.context["messages"]] == [
        f"Queued: the paid callback of {order.public_id} (evt_{row.pk}) is sent again."
    ]
    assert state_of(order) == D.PENDING
    assert audit() == [
        (
            "staff:otto",
            str(order.pk),
            {"deliveries": [row.pk], "state": "delivered or failed"},
            {"state": "pending", "resent": 1},
        )
    ]


def test_a_delivery_on_its_way_is_not_offered_again(operator: Client, chatbot: ApiClient) -> None:
    order = an_order(chatbot, "ann", delivered_at=timezone.now())
    CallbackDelivery.objects.filter(order=order).update(state=D.PENDING)
    done = operator.get(f"/admin/orders/order/{order.pk}/resend/", follow=True)
    assert [str(m) for m in done.context["messages"]] == [
        "Nothing to resend: its latest callback (paid) is still on its way."
    ]
    assert audit() == []


def test_the_list_action_resends_the_selected_orders(
    operator: Client, viewer: Client, chatbot: ApiClient
) -> None:
    # given
    first, second = (an_order(chatbot, n, delivered_at=timezone.now()) for n in ("a", "b"))
    post = {"action": "resend_callbacks", "_selected_action": [first.pk, second.pk]}
    # when
    viewer.post("/admin/orders/order/", post)
    untouched = [state_of(first), state_of(second)]
    operator.post("/admin/orders/order/", post)
    # then
    assert untouched == [D.DELIVERED, D.DELIVERED]
    assert [state_of(first), state_of(second)] == [D.PENDING, D.PENDING]
    assert [(a[0], a[3]) for a in audit()] == [("staff:otto", {"state": "pending", "resent": 2})]


def test_a_time_range_is_counted_confirmed_and_resends_only_its_orders(
    operator: Client, viewer: Client, chatbot: ApiClient
) -> None:
    # given: changes 3 h, 90 min and 30 min ago; the range is 2 h ago to 1 h ago
    now = timezone.localtime()
    before, inside, after = (
        an_order(chatbot, name, delivered_at=now - ago)
        for name, ago in [
            ("a", timedelta(hours=3)),
            ("b", timedelta(minutes=90)),
            ("c", timedelta(minutes=30)),
        ]
    )
    since, until = now - timedelta(hours=2), now - timedelta(hours=1)
    given = {"since": f"{since:{LOCAL}}", "until": f"{until:{LOCAL}}"}
    # when
    refused = [viewer.get(RANGE_URL), viewer.post(RANGE_URL, {**given, "confirm": "yes"})]
    form = operator.get(RANGE_URL)
    asked = operator.get(RANGE_URL, given)
    done = operator.post(RANGE_URL, {**given, "confirm": "yes"}, follow=True)
    # then
    assert [r.status_code for r in refused] == [403, 403]
    assert 'type="datetime-local"' in form.content.decode()
    assert figures(asked)["count"] == "1"
    assert [str(m) for m in done.context["messages"]] == ["1 callback(s) queued to be sent again."]
    assert [state_of(before), state_of(inside), state_of(after)] == [
        D.DELIVERED,
        D.PENDING,
        D.DELIVERED,
    ]
    ((actor, _, before_, after_),) = audit()
    assert actor == "staff:otto"
    assert before_["deliveries"] == [CallbackDelivery.objects.get(order=inside).pk]
    assert before_["since"].startswith(f"{since:%Y-%m-%dT%H:%M}")
    assert after_ == {"state": "pending", "resent": 1}


def test_an_empty_or_backward_range_resends_nothing(operator: Client, chatbot: ApiClient) -> None:
    now = timezone.localtime()
    an_order(chatbot, "a", delivered_at=now - timedelta(days=3))
    empty = {"since": f"{now - timedelta(hours=1):{LOCAL}}", "until": f"{now:{LOCAL}}"}
    backward = {"since": empty["until"], "until": empty["since"]}
    answers = [
        operator.get(RANGE_URL, empty).content.decode(),
        operator.get(RANGE_URL, backward).content.decode(),
    ]
    assert "No order&#x27;s latest status changed in that range." in answers[0]
    assert "The range must end after it starts." in answers[1]
    operator.post(RANGE_URL, {**backward, "confirm": "yes"})
    assert audit() == []
    assert not CallbackDelivery.objects.filter(state=D.PENDING).exists()
