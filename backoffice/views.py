"""A campaign's page (figures and charts, refreshed every few seconds) and its controls: pause
and resume, and its limits. Mounted by backoffice.admin (CampaignPageAdmin.get_urls); the
permissions, figures and confirmation page are those of orders' own pages
(orders.admin_views.common), so every staff page looks and asks alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from backoffice import dashboard
from backoffice.charts import throughput_charts
from coupons import selectors as coupons_selectors
from coupons import services as coupons_services
from coupons.models import Campaign
from infra.admin import yuan
from infra.errors import DomainError, NotFound
from orders.admin_views.common import (
    CONTROL_CAMPAIGN,
    CONTROL_RATE_LIMITS,
    VIEW_CAMPAIGN,
    Figure,
    actor_of,
    as_count,
    as_duration,
    as_limit,
    as_rate,
    as_time,
    confirm,
    confirmed,
    page,
    require,
)
from shop import selectors as shop_selectors
from shop import services as shop_services
from shop.models import RateLimit

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


# --- The campaign page ------------------------------------------------------------------------


def campaign_page(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """Status, coupons, budget, stock, orders by status, the line, throughput and times to
    paid; `?fragment=1` answers only the part the page refreshes every LIVE_SECONDS."""
    require(request, VIEW_CAMPAIGN)
    try:
        figures = dashboard.campaign_figures(campaign_id=campaign_id)
    except NotFound:
        raise Http404("No such campaign.") from None
    campaign = figures.campaign
    context = {
        "campaign": campaign,
        "figures": figures,
        "panels": _campaign_panels(figures),
        "charts": [
            *throughput_charts("recent", "last 15 minutes", figures.recent),
            *throughput_charts("whole", "whole campaign", figures.whole),
        ],
        "live_url": f"{request.path}?fragment=1",
        "live_seconds": dashboard.LIVE_SECONDS,
        "read_at": as_time(figures.read_at),
    }
    if request.GET.get("fragment"):
        return TemplateResponse(request, "backoffice/admin/campaign_live.html", context)
    context.update(
        can_control=request.user.has_perm(CONTROL_CAMPAIGN),
        audit=list(shop_selectors.audit_list_for_campaign(campaign_id=campaign.pk)[:15]),
    )
    return page(request, "backoffice/admin/campaign_page.html", str(campaign), **context)


def _campaign_panels(f: dashboard.CampaignFigures) -> list[tuple[str, list[Figure]]]:
    c = f.campaign
    line = f.line
    ceiling = c.backlog_ceiling if c.backlog_ceiling is not None else settings.BACKLOG_CEILING
    recent, whole = f.recent, f.whole
    history = "" if whole.complete else f"history {whole.minutes_known:,}/{whole.minutes:,} min"
    return [
        (
            "Campaign",
            [
                Figure("Status", "status", f.public_status, f"set by staff: {c.status}"),
                Figure("Starts", "starts-at", as_time(c.starts_at)),
                Figure("Ends", "ends-at", as_time(c.ends_at)),
                Figure("Coupons valid until", "coupon-valid-until", as_time(c.coupon_valid_until)),
                Figure("Per-customer limit", "per-customer-limit", f"{c.per_customer_limit:,}"),
                Figure(
                    "Backlog ceiling",
                    "backlog-ceiling",
                    f"{ceiling:,}",
                    "" if c.backlog_ceiling is not None else "default",
                ),
            ],
        ),
        (
            "Coupons",
            [
                Figure("Total", "coupons-total", as_count(c.coupons_total)),
                Figure("Issued", "coupons-issued", as_count(c.coupons_issued)),
                Figure("Held by orders", "coupons-held", as_count(f.coupons_held)),
                Figure("Redeemed", "coupons-redeemed", as_count(f.coupons_redeemed)),
                Figure("Remaining", "coupons-remaining", as_count(c.coupons_remaining)),
            ],
        ),
        (
            "Budget",
            [
                Figure("Total", "budget-total", yuan(c.budget_total)),
                Figure("Held", "budget-held", yuan(c.budget_held)),
                Figure("Spent", "budget-spent", yuan(c.budget_spent)),
                Figure("Remaining", "budget-remaining", yuan(c.budget_remaining)),
            ],
        ),
        (
            "Orders by status",
            [
                *(
                    Figure(status.replace("_", " "), f"orders-{status}", as_count(n))
                    for status, n in f.orders_by_status.items()
                ),
                Figure("All", "orders-total", as_count(f.orders_total), _counted(f)),
            ],
        ),
        (
            "Line",
            [
                Figure("Orders waiting", "line-waiting", as_count(line.waiting if line else 0)),
                Figure(
                    "Oldest waiting since",
                    "line-oldest",
                    as_time(line.oldest_created_at if line else None),
                ),
                Figure("Parked", "line-parked", as_count(line.parked if line else 0)),
                Figure("Drain rate", "line-drain-rate", as_rate(f.drain_rate, " orders/s")),
                Figure(
                    "Time to clear",
                    "line-wait",
                    as_duration(f.estimated_wait_seconds) if line and line.waiting else "—",
                ),
            ],
        ),
        (
            "Throughput and time to paid",
            [
                Figure("Accepted, last 15 min", "recent-accepted", as_count(recent.accepted)),
                Figure("Paid, last 15 min", "recent-paid", as_count(recent.paid)),
                Figure("Median to paid, last 15 min", "recent-p50", as_duration(recent.p50)),
                Figure("p95 to paid, last 15 min", "recent-p95", as_duration(recent.p95)),
                Figure(
                    "Accepted, whole campaign", "whole-accepted", as_count(whole.accepted), history
                ),
                Figure("Paid, whole campaign", "whole-paid", as_count(whole.paid), history),
                Figure("Median to paid, whole campaign", "whole-p50", as_duration(whole.p50)),
                Figure("p95 to paid, whole campaign", "whole-p95", as_duration(whole.p95)),
            ],
        ),
    ]


def _counted(f: dashboard.CampaignFigures) -> str:
    """When the orders were counted, if not on this refresh (backoffice.dashboard.kept_count)."""
    if f.orders_counted_at is None:
        return "counting…"
    if (f.read_at - f.orders_counted_at).total_seconds() < dashboard.LIVE_SECONDS:
        return ""
    return f"as of {timezone.localtime(f.orders_counted_at):%H:%M:%S}"


STATUS_CONTROLS: dict[str, tuple[str, str, str]] = {
    "pause": (
        Campaign.Status.PAUSED,
        "Pause",
        "New claims and orders will be answered campaign_not_active by every server within a "
        "fraction of a second. Orders already in line wait until it is resumed (or are "
        "rejected once its window ends); orders already holding finish their payment.",
    ),
    "resume": (
        Campaign.Status.ACTIVE,
        "Resume",
        "Claims and orders are taken again, and the orders waiting in line are drained "
        "within seconds.",
    ),
}


def campaign_status(request: HttpRequest, campaign_id: int, verb: str) -> HttpResponse:
    """Pause or resume, after a confirmation page."""
    require(request, CONTROL_CAMPAIGN)
    if verb not in STATUS_CONTROLS:
        raise Http404
    campaign = _campaign(campaign_id)
    status, label, consequence = STATUS_CONTROLS[verb]
    back = reverse("admin:coupons_campaign_dashboard", args=[campaign.pk])
    if confirmed(request):
        try:
            coupons_services.campaign_status_change(
                campaign_id=campaign.pk, status=status, actor=actor_of(request)
            )
        except DomainError as exc:
            messages.error(request, f"Refused: {exc.detail}")
        else:
            messages.success(request, f"{label}d: {campaign.slug}.")
        return HttpResponseRedirect(back)
    return confirm(
        request,
        title=f"{label} {campaign.name}?",
        consequence=consequence,
        details=[
            Figure("Campaign", "campaign", campaign.slug),
            Figure("Status now", "status", campaign.status_at(timezone.now())),
        ],
        confirm_label=f"Yes, {label.lower()} it",
        cancel_url=back,
    )


def _campaign(campaign_id: int) -> Campaign:
    try:
        return coupons_selectors.campaign_by_id(campaign_id=campaign_id)
    except NotFound:
        raise Http404("No such campaign.") from None


class LimitsForm(forms.Form):
    per_customer_limit = forms.IntegerField(
        min_value=1, help_text="Coupons (and orders holding or paid) per customer."
    )
    backlog_ceiling = forms.IntegerField(
        min_value=1,
        required=False,
        help_text=f"Orders waiting in line beyond which new orders get 429. "
        f"Empty: the default ({settings.BACKLOG_CEILING:,}).",
    )
    coupons_total = forms.IntegerField(
        min_value=0,
        required=False,
        label="Coupons in all",
        help_text="Raise or lower the campaign's coupon stock; never below the coupons issued. "
        "Empty: unchanged.",
    )

    def __init__(self, *args: Any, rate_limits: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rate_scopes: list[tuple[str, str]] = []
        if rate_limits:
            for scope, label in RateLimit.Scope.choices:
                self.fields[f"{scope}_per_second"] = forms.FloatField(
                    min_value=0,
                    required=False,
                    label=f"{label}: per second",
                    help_text="Empty: unlimited. 0: stopped.",
                )
                self.fields[f"{scope}_burst"] = forms.IntegerField(
                    min_value=1, label=f"{label}: burst"
                )
                self.rate_scopes.append((scope, str(label)))


def campaign_limits(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The campaign's per-customer limit, backlog ceiling and coupon stock, and (with the
    rate-limit permission) the global rate limits: a form, then a confirmation page listing
    each change from → to, then the services in one transaction (each change audited; a stock
    below the coupons issued is refused, and nothing is changed)."""
    require(request, CONTROL_CAMPAIGN)
    campaign = _campaign(campaign_id)
    rate_limits = request.user.has_perm(CONTROL_RATE_LIMITS)
    in_force = {x.scope: x for x in shop_selectors.rate_limits_in_force()}
    initial: dict[str, Any] = {
        "per_customer_limit": campaign.per_customer_limit,
        "backlog_ceiling": campaign.backlog_ceiling,
        "coupons_total": campaign.coupons_total,
    }
    for scope, limit in in_force.items():
        initial[f"{scope}_per_second"] = limit.per_second
        initial[f"{scope}_burst"] = limit.burst
    back = reverse("admin:coupons_campaign_dashboard", args=[campaign.pk])
    if request.method != "POST":
        form = LimitsForm(initial=initial, rate_limits=rate_limits)
        return page(
            request,
            "backoffice/admin/limits.html",
            f"Limits of {campaign.name}",
            campaign=campaign,
            form=form,
            cancel_url=back,
        )
    form = LimitsForm(request.POST, rate_limits=rate_limits)
    if not form.is_valid():
        return page(
            request,
            "backoffice/admin/limits.html",
            f"Limits of {campaign.name}",
            campaign=campaign,
            form=form,
            cancel_url=back,
        )
    data = form.cleaned_data
    changes = {
        name: data[name] for name in coupons_services.CAMPAIGN_LIMITS if data[name] != initial[name]
    }
    # The stock has its own service: it spreads the room left over the campaign's slices.
    if data["coupons_total"] is not None and data["coupons_total"] != initial["coupons_total"]:
        changes["coupons_total"] = data["coupons_total"]
    rate_changes = {
        scope: (data[f"{scope}_per_second"], data[f"{scope}_burst"])
        for scope, _ in form.rate_scopes
        if (data[f"{scope}_per_second"], data[f"{scope}_burst"])
        != (in_force[scope].per_second, in_force[scope].burst)
    }
    if not changes and not rate_changes:
        messages.info(request, "Nothing changed.")
        return HttpResponseRedirect(back)
    if not confirmed(request):
        details = [
            Figure(name.replace("_", " "), name, f"{initial[name]} → {value}")
            for name, value in changes.items()
        ] + [
            Figure(
                f"{scope} rate limit",
                scope,
                f"{as_limit(in_force[scope].per_second, in_force[scope].burst)} → {as_limit(*new)}",
            )
            for scope, new in rate_changes.items()
        ]
        posted = {k: ("" if v is None else v) for k, v in data.items()}
        return confirm(
            request,
            title=f"Change the limits of {campaign.name}?",
            consequence="Every process applies new rate limits within "
            f"{settings.RATE_LIMIT_CACHE_SECONDS:g} s; rate limits apply to every campaign.",
            details=details,
            confirm_label="Yes, change them",
            cancel_url=back,
            fields=posted,
            danger=False,
        )
    actor = actor_of(request)
    try:
        with transaction.atomic():  # all the changes, or none
            total = changes.pop("coupons_total", None)
            if changes:
                coupons_services.campaign_update(
                    campaign_id=campaign.pk, changes=changes, actor=actor, action="campaign.limits"
                )
            if total is not None:
                coupons_services.campaign_totals_change(
                    campaign_id=campaign.pk, coupons_total=total, actor=actor
                )
                changes["coupons_total"] = total
            for scope, (per_second, burst) in rate_changes.items():
                shop_services.rate_limit_change(
                    scope=scope, per_second=per_second, burst=burst, actor=actor
                )
    except (DomainError, ValueError) as exc:
        fields = getattr(exc, "extra", {}).get("fields") or {}
        reasons = [reason for found in fields.values() for reason in found]
        messages.error(request, " ".join([f"Refused: {getattr(exc, 'detail', exc)}", *reasons]))
    else:
        messages.success(request, f"Limits changed: {', '.join([*changes, *rate_changes])}.")
    return HttpResponseRedirect(back)
