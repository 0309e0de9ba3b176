"""What the admin's own pages share: the permissions each role needs, labelled figures, how
numbers and times are written, and the confirmation page every control goes through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone

if TYPE_CHECKING:
    from datetime import datetime

    from django.http import HttpRequest


VIEW_CAMPAIGN = "coupons.view_campaign"
CONTROL_CAMPAIGN = "coupons.change_campaign"
VIEW_ORDERS = "orders.view_order"
CONTROL_ORDERS = "orders.change_order"
CONTROL_RATE_LIMITS = "shop.change_ratelimit"
REPLAY_LIMIT = 1000  # parked rows replayed by one confirmation (each kind's service batches)


def require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def actor_of(request: HttpRequest) -> str:
    return f"staff:{request.user.get_username()}"


def page(request: HttpRequest, template: str, title: str, **context: Any) -> TemplateResponse:
    return TemplateResponse(
        request, template, {**admin.site.each_context(request), "title": title, **context}
    )


@dataclass(frozen=True)
class Figure:
    """One labelled number on a page; `key` names it for tests and scripts (data-figure)."""

    label: str
    key: str
    value: str
    note: str = ""


def as_count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


SIXTY = 60  # seconds in a minute, minutes in an hour


def as_duration(value: float | None) -> str:
    """A duration for people: 850 ms, 4.2 s, 3 min 20 s, 2 h 5 min."""
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < SIXTY:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), SIXTY)
    if minutes < SIXTY:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, SIXTY)
    return f"{hours} h {minutes} min"


def as_rate(value: float | None, unit: str = "/s") -> str:
    return "—" if value is None else f"{value:,.1f}{unit}"


def as_time(moment: datetime | None) -> str:
    return "—" if moment is None else f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S}"


def confirmed(request: HttpRequest) -> bool:
    return request.method == "POST" and request.POST.get("confirm") == "yes"


def confirm(
    request: HttpRequest,
    *,
    title: str,
    consequence: str,
    details: list[Figure],
    confirm_label: str,
    cancel_url: str,
    fields: dict[str, Any] | None = None,
    danger: bool = True,
) -> TemplateResponse:
    """The confirmation page of a control: what it will do, and a POST that does it."""
    return page(
        request,
        "orders/admin/confirm.html",
        title,
        consequence=consequence,
        details=details,
        confirm_label=confirm_label,
        cancel_url=cancel_url,
        fields=sorted((fields or {}).items()),
        danger=danger,
    )


def as_limit(per_second: float | None, burst: int) -> str:
    rate = "unlimited" if per_second is None else f"{per_second:g}/s"
    return f"{rate}, burst {burst}"
