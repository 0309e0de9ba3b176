"""An order's controls: cancel an unpaid order, refund a paid one through the gateway, resend
its latest callback."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse

from infra.admin import yuan
from infra.errors import DomainError, NotFound
from orders import selectors, services
from orders.admin_views.common import (
    CONTROL_ORDERS,
    Figure,
    actor_of,
    confirm,
    confirmed,
    require,
)
from orders.services.callbacks import RESENDABLE, event_id

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from orders.models import CallbackDelivery, Order


PAST = {"cancel": "cancelled", "refund": "refunded", "resend": "resent"}


def order_control(request: HttpRequest, order_id: int, verb: str) -> HttpResponse:
    """Cancel an unpaid order (its holds released), refund a paid one through the gateway, or
    resend its latest callback, after a confirmation page that shows what moves."""
    require(request, CONTROL_ORDERS)
    if verb not in PAST:
        raise Http404
    try:
        order = selectors.order_by_id(order_id=order_id)
    except NotFound:
        raise Http404("No such order.") from None
    back = reverse("admin:orders_order_change", args=[order.pk])
    if verb == "resend":
        return _resend(request, order, back)
    if confirmed(request):
        try:
            if verb == "cancel":
                done = services.staff_order_cancel(order_id=order.pk, actor=actor_of(request))
                messages.success(request, f"Cancelled: {done.public_id}.")
            else:
                done = services.order_refund(order_id=order.pk, actor=actor_of(request))
                messages.success(
                    request,
                    f"Refunded: {done.public_id} ({yuan(done.payable)} back to the customer, "
                    f"{yuan(done.discount)} back to the campaign's budget).",
                )
        except DomainError as exc:
            messages.error(request, f"Not {PAST[verb]}: {exc.detail}")
        return HttpResponseRedirect(back)
    payment = selectors.payments_by_order([order.pk]).get(order.pk)
    details = [
        Figure("Order", "order", str(order.public_id)),
        Figure("Status", "status", order.status),
        Figure("Customer", "customer", order.customer_id),
        Figure("Campaign", "campaign", order.campaign.slug if order.campaign else "—"),
        Figure("Paid by the customer", "payable", yuan(order.payable)),
        Figure("Discount", "discount", yuan(order.discount)),
        Figure("Payment", "payment", f"{payment.status} {payment.charge_id}" if payment else "—"),
    ]
    if verb == "cancel":
        title = f"Cancel order {order.public_id}?"
        consequence = (
            "What it holds is released: its units back to stock, its coupon back to the "
            "customer, its discount back to the campaign's budget. It cannot be undone."
        )
    else:
        title = f"Refund order {order.public_id}?"
        consequence = (
            f"The gateway refunds {yuan(order.payable)} of the charge; the discount "
            f"({yuan(order.discount)}) goes back to the campaign's budget; the coupon is not "
            "given back. It cannot be undone."
        )
    return confirm(
        request,
        title=title,
        consequence=consequence,
        details=details,
        confirm_label=f"Yes, {verb} it",
        cancel_url=back,
    )


def _resend(request: HttpRequest, order: Order, back: str) -> HttpResponse:
    """The order's newest delivery (its latest status) sent again: `staff_callbacks_resend`."""
    latest = selectors.latest_callbacks(order_ids=[order.pk]).first()
    if confirmed(request):
        resent = services.staff_callbacks_resend(order_ids=[order.pk], actor=actor_of(request))
        if resent:
            messages.success(
                request,
                f"Queued: the {latest.order_status if latest else ''} callback of "
                f"{order.public_id} ({event_id(delivery_id=resent[0])}) is sent again.",
            )
        else:
            messages.warning(request, f"Nothing resent: {_why_not(latest)}")
        return HttpResponseRedirect(back)
    if latest is None or latest.state not in RESENDABLE:
        messages.warning(request, f"Nothing to resend: {_why_not(latest)}")
        return HttpResponseRedirect(back)
    return confirm(
        request,
        title=f"Resend the latest callback of order {order.public_id}?",
        consequence=(
            f"Its {latest.order_status} status is POSTed again to its callback URL, with the "
            "same event id and a new delivery id, and the whole retry schedule if it fails."
        ),
        details=[
            Figure("Order", "order", str(order.public_id)),
            Figure("Status sent", "status", latest.order_status),
            Figure("Event", "event", event_id(delivery_id=latest.pk)),
            Figure("Last delivery", "state", f"{latest.state}, {latest.attempts} attempt(s)"),
            Figure("URL", "url", latest.url),
        ],
        confirm_label="Yes, resend it",
        cancel_url=back,
        danger=False,
    )


def _why_not(latest: CallbackDelivery | None) -> str:
    if latest is None:
        return "the order asked for no callbacks."
    return f"its latest callback ({latest.order_status}) is still on its way."
