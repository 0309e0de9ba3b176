"""An order's controls: cancel an unpaid order, refund a paid one through the gateway."""

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

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


PAST = {"cancel": "cancelled", "refund": "refunded"}


def order_control(request: HttpRequest, order_id: int, verb: str) -> HttpResponse:
    """Cancel an unpaid order (its holds released) or refund a paid one through the gateway,
    after a confirmation page that shows what moves."""
    require(request, CONTROL_ORDERS)
    if verb not in PAST:
        raise Http404
    try:
        order = selectors.order_by_id(order_id=order_id)
    except NotFound:
        raise Http404("No such order.") from None
    back = reverse("admin:orders_order_change", args=[order.pk])
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
