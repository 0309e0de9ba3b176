"""Resending callbacks: every order's latest status over a time range, after a confirmation
(the one-order resend is a control on the order's page, orders.admin_views.order)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.urls import reverse

from orders import selectors, services
from orders.admin_views.common import (
    CONTROL_ORDERS,
    Figure,
    actor_of,
    as_count,
    as_time,
    confirm,
    confirmed,
    page,
    require,
)

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

# Orders one confirmation resends at most: one UPDATE, and one more POST per order for the
# callback workers. A wider range is refused, not cut short, so that nothing is left out.
RESEND_LIMIT = 10_000
_LOCAL = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> sends


class ResendRange(forms.Form):
    since = forms.DateTimeField(
        label="Changed from",
        input_formats=[_LOCAL, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=_LOCAL),
        help_text="Server time. Included.",
    )
    until = forms.DateTimeField(
        label="to",
        input_formats=[_LOCAL, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=_LOCAL),
        help_text="Excluded.",
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and until <= since:
            raise forms.ValidationError("The range must end after it starts.")
        return data


def callbacks_resend_range(request: HttpRequest) -> HttpResponse:
    """The form (a range of time), then a confirmation with the number of orders, then the
    resend (`staff_callbacks_resend_between`, audited)."""
    require(request, CONTROL_ORDERS)
    back = reverse("admin:orders_order_backlog")
    data = request.POST if request.method == "POST" else request.GET
    form = ResendRange(data if "since" in data else None)
    if not form.is_valid():
        return _form(request, form, back)
    since, until = form.cleaned_data["since"], form.cleaned_data["until"]
    if confirmed(request):
        resent = services.staff_callbacks_resend_between(
            since=since, until=until, actor=actor_of(request), limit=RESEND_LIMIT
        )
        messages.success(request, f"{len(resent):,} callback(s) queued to be sent again.")
        return HttpResponseRedirect(back)
    found = selectors.latest_callbacks_between(since=since, until=until)
    count = found[: RESEND_LIMIT + 1].count()
    if count > RESEND_LIMIT:
        form.add_error(None, f"More than {RESEND_LIMIT:,} orders: narrow the range.")
        return _form(request, form, back)
    if not count:
        form.add_error(None, "No order's latest status changed in that range.")
        return _form(request, form, back)
    return confirm(
        request,
        title=f"Resend the latest callback of {count:,} order(s)?",
        consequence=(
            "Each order whose latest status changed in the range has that status POSTed again "
            "to its callback URL, with the same event id and a new delivery id, and the whole "
            "retry schedule if it fails. Deliveries still on their way are left as they are. "
            "Chatbots that already have it will see a duplicate, which they must accept."
        ),
        details=[
            Figure("From", "since", as_time(since)),
            Figure("To", "until", as_time(until)),
            Figure("Orders", "count", as_count(count)),
        ],
        confirm_label="Yes, resend them",
        cancel_url=back,
        fields={"since": data["since"], "until": data["until"]},
        danger=False,
    )


def _form(request: HttpRequest, form: ResendRange, back: str) -> HttpResponse:
    return page(
        request,
        "orders/admin/resend_callbacks.html",
        "Resend callbacks",
        form=form,
        cancel_url=back,
    )
