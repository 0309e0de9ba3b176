"""The backlog page (queues, lines, workers, rate limits, dead work) and the replay of dead
work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from infra import fast
from orders import dashboard, selectors, services
from orders.admin_views.common import (
    CONTROL_ORDERS,
    REPLAY_LIMIT,
    VIEW_ORDERS,
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

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.http import HttpRequest, HttpResponse


# --- The backlog page -------------------------------------------------------------------------


SHED_WINDOW_MINUTES = 15


def backlog_page(request: HttpRequest) -> HttpResponse:
    """Queues, lines, workers, rate limits and dead work; `?fragment=1` for the refresh."""
    require(request, VIEW_ORDERS)
    figures = dashboard.backlog_figures()
    context = {
        "figures": figures,
        "queues": [
            {
                "q": q,
                "messages": as_count(q.messages),
                "age": ("" if q.oldest_age_exact or q.oldest_age_seconds is None else "≥ ")
                + as_duration(q.oldest_age_seconds),
                "waiting": as_count(q.work_waiting),
                "rate": as_rate(q.rate_per_second),
                "drain": _drain(q.work_waiting, q.drain_seconds),
            }
            for q in figures.queues
        ],
        "lines": [
            {
                "x": x,
                "name": x.campaign.slug if x.campaign else "(no campaign)",
                "waiting": as_count(x.line.waiting),
                "oldest": as_duration(x.oldest_age_seconds),
                "rate": as_rate(x.drain_rate),
                "drain": _drain(x.line.waiting, x.drain_seconds),
                "ceiling": as_count(x.ceiling),
                "limit": x.campaign.per_customer_limit if x.campaign else "—",
            }
            for x in figures.lines
        ],
        "limits": [
            {"x": x, "rate": as_limit(x.per_second, x.burst), "changed": as_time(x.changed_at)}
            for x in figures.limits
        ],
        "callbacks_pending": as_count(figures.callbacks_pending),
        "callbacks_oldest": as_duration(figures.callbacks_oldest_age_seconds),
        "gateway_tokens": "—"
        if figures.gateway_tokens is None
        else f"{figures.gateway_tokens:.0f}",
        "shed": fast.shed_counts(SHED_WINDOW_MINUTES),
        "shed_minutes": SHED_WINDOW_MINUTES,
        "workers_asked": as_time(figures.workers.asked_at),
        "can_control": request.user.has_perm(CONTROL_ORDERS),
        "live_url": f"{request.path}?fragment=1",
        "live_seconds": dashboard.LIVE_SECONDS,
        "read_at": as_time(figures.read_at),
    }
    if request.GET.get("fragment"):
        return TemplateResponse(request, "orders/admin/backlog_live.html", context)
    return page(request, "orders/admin/backlog_page.html", "Backlog", **context)


def _drain(waiting: int | None, seconds: int | None) -> str:
    if waiting is None:
        return "—"
    if waiting == 0:
        return "empty"
    if seconds is None:
        return "not draining"
    return as_duration(seconds)


@dataclass(frozen=True)
class Replay:
    title: str
    consequence: str
    ids: Callable[[], list[int]]
    run: Callable[..., int]
    done: str


REPLAYS: dict[str, Replay] = {
    "payments": Replay(
        title="Replay every parked payment?",
        consequence="Each payment first asks the gateway what happened to its charge, and is "
        "charged again (with the same key) only if the gateway has none.",
        ids=lambda: list(
            selectors.parked_payments().values_list("order_id", flat=True)[:REPLAY_LIMIT]
        ),
        run=lambda ids, actor: services.staff_payments_replay(order_ids=ids, actor=actor),
        done="{n} parked payment(s) replayed.",
    ),
    "callbacks": Replay(
        title="Replay every failed callback?",
        consequence="Each delivery is tried again, with a fresh attempt budget.",
        ids=lambda: list(selectors.failed_callbacks().values_list("pk", flat=True)[:REPLAY_LIMIT]),
        run=lambda ids, actor: services.staff_callbacks_replay(delivery_ids=ids, actor=actor),
        done="{n} failed deliver(ies) replayed.",
    ),
    "orders": Replay(
        title="Return every parked order to its line?",
        consequence="Each goes back to the head of its campaign's line. If what made it fail "
        "is not fixed, it fails and is parked again.",
        ids=lambda: list(selectors.parked_orders().values_list("pk", flat=True)[:REPLAY_LIMIT]),
        run=lambda ids, actor: services.staff_orders_unpark(order_ids=ids, actor=actor),
        done="{n} parked order(s) returned to their line.",
    ),
}


def replay(request: HttpRequest, kind: str) -> HttpResponse:
    """Replay one kind of dead work (at most REPLAY_LIMIT rows), after a confirmation."""
    require(request, CONTROL_ORDERS)
    if kind not in REPLAYS:
        raise Http404
    what = REPLAYS[kind]
    back = reverse("admin:orders_order_backlog")
    ids = what.ids()
    if confirmed(request):
        count = what.run(ids, actor_of(request))
        messages.success(request, what.done.format(n=count))
        return HttpResponseRedirect(back)
    return confirm(
        request,
        title=what.title,
        consequence=what.consequence,
        details=[Figure("How many", "count", f"{len(ids):,}")],
        confirm_label="Yes, replay them",
        cancel_url=back,
    )
