"""Time the staff admin's pages against a database of campaign volume.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/campaign_volume \\
        .venv/bin/python -m bench.seed_volume --orders 1000000 --coupons 1000000
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/campaign_volume \\
        .venv/bin/python -m bench.admin_pages

Each page is requested in this process through Django's test client (the whole middleware,
view and template stack; no network), logged in as a superuser, which sees every page and
control. The first request of each page is reported apart ("first"): it fills the caches and,
for the campaign page, starts reading the campaign's minute history, which this script clears
first so that the worst case is measured. Then the history is left to finish, and each page
is requested --runs more times: the table shows the median and the slowest of those.

Fast state and the page caches go to Redis DB 13 (REDIS_URL), apart from a running stack's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass

BUDGET_MS = 500.0
OK = 200


def _setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
    os.environ.setdefault("CELERY_BROKER_URL", os.environ["REDIS_URL"])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ["DEBUG"] = "0"  # no SQL log in memory, as in production
    os.environ.setdefault("ALLOWED_HOSTS", "localhost")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


@dataclass(frozen=True)
class Timing:
    name: str
    url: str
    status: int
    first_ms: float
    median_ms: float
    max_ms: float


def _pages() -> list[tuple[str, str]]:
    """Every page staff use during a campaign: lists with each filter and search, the
    records, the controls' confirmation pages and forms, the operations pages."""
    from datetime import timedelta

    from django.utils import timezone

    from coupons import selectors as coupons_selectors
    from coupons.models import CampaignEvent, Coupon
    from orders.models import CallbackDelivery, Order, OrderEvent, Payment, Reservation
    from shop.models import ApiClient

    campaign = coupons_selectors.campaigns_with_issued().order_by("-coupons_issued").first()
    if campaign is None:
        sys.exit("No campaign: run python -m bench.seed_volume into this database first.")
    newest = Order.objects.order_by("-id")
    order = newest.filter(status="paid").first()
    waiting = newest.filter(status="received").first()
    called = newest.filter(status="paid").exclude(callback_url="").first()
    coupon = Coupon.objects.order_by("-id").first()
    client = ApiClient.objects.order_by("pk").first()
    latest = {
        model.__name__: model.objects.order_by("-id").values_list("id", flat=True).first() or 0
        for model in (CallbackDelivery, OrderEvent, Payment, Reservation, CampaignEvent)
    }
    c = f"/admin/coupons/campaign/{campaign.pk}"
    o = "/admin/orders/order"
    # Callbacks to resend: those of two minutes half an hour before the newest (server time,
    # as the form's datetime-local fields send it).
    newest_callback = (
        CallbackDelivery.objects.order_by("-id").values_list("created_at", flat=True).first()
    )
    since = timezone.localtime((newest_callback or timezone.now()) - timedelta(minutes=30))
    until = since + timedelta(minutes=2)
    resend = f"since={since:%Y-%m-%dT%H:%M}&until={until:%Y-%m-%dT%H:%M}"
    return [
        ("admin index", "/admin/"),
        ("campaign page", f"{c}/dashboard/"),
        ("campaign page, refresh", f"{c}/dashboard/?fragment=1"),
        ("backlog page", f"{o}/backlog/"),
        ("backlog page, refresh", f"{o}/backlog/?fragment=1"),
        ("replay parked payments?", f"{o}/backlog/replay/payments/"),
        ("replay failed callbacks?", f"{o}/backlog/replay/callbacks/"),
        ("replay parked orders?", f"{o}/backlog/replay/orders/"),
        ("campaigns list", "/admin/coupons/campaign/"),
        ("campaign record", f"{c}/change/"),
        ("limits form", f"{c}/limits/"),
        ("pause confirmation", f"{c}/status/pause/"),
        ("orders list", f"{o}/"),
        ("orders list, page 2", f"{o}/?p=2"),
        ("orders: status received", f"{o}/?status__exact=received"),
        ("orders: status paid", f"{o}/?status__exact=paid"),
        ("orders: status refunded", f"{o}/?status__exact=refunded"),
        ("orders: status cancelled", f"{o}/?status__exact=cancelled"),
        ("orders: of the campaign", f"{o}/?campaign__id__exact={campaign.pk}"),
        (
            "orders: campaign, refunded",
            f"{o}/?campaign__id__exact={campaign.pk}&status__exact=refunded",
        ),
        ("orders: of the client", f"{o}/?client__id__exact={client.pk if client else 0}"),
        ("orders: test mode", f"{o}/?livemode__exact=0"),
        ("orders: parked", f"{o}/?parked=yes"),
        ("orders: reason out_of_stock", f"{o}/?reason__exact=out_of_stock"),
        ("orders: reason limit_reached", f"{o}/?reason__exact=limit_reached"),
        ("orders: search customer", f"{o}/?q={order.customer_id if order else ''}"),
        ("orders: search order id", f"{o}/?q={order.public_id if order else ''}"),
        ("orders: search key", f"{o}/?q={order.idempotency_key if order else ''}"),
        ("order page", f"{o}/{order.pk if order else 0}/change/"),
        ("refund confirmation", f"{o}/{order.pk if order else 0}/refund/"),
        ("cancel confirmation", f"{o}/{waiting.pk if waiting else 0}/cancel/"),
        ("resend confirmation", f"{o}/{called.pk if called else 0}/resend/"),
        ("resend range form", f"{o}/callbacks/resend/"),
        ("resend range confirmation", f"{o}/callbacks/resend/?{resend}"),
        ("coupons list", "/admin/coupons/coupon/"),
        ("coupons: status reserved", "/admin/coupons/coupon/?status__exact=reserved"),
        ("coupons: status expired", "/admin/coupons/coupon/?status__exact=expired"),
        ("coupons: of the campaign", f"/admin/coupons/coupon/?campaign__id__exact={campaign.pk}"),
        ("coupons: test mode", "/admin/coupons/coupon/?campaign_livemode=0"),
        ("coupons: search code", f"/admin/coupons/coupon/?q={coupon.code if coupon else ''}"),
        (
            "coupons: search customer",
            f"/admin/coupons/coupon/?q={coupon.customer_id if coupon else ''}",
        ),
        ("coupon page", f"/admin/coupons/coupon/{coupon.pk if coupon else 0}/change/"),
        ("payments list", "/admin/orders/payment/"),
        ("payments: parked", "/admin/orders/payment/?status__exact=parked"),
        ("payments: declined", "/admin/orders/payment/?status__exact=declined"),
        (
            "payments: search order id",
            f"/admin/orders/payment/?q={order.public_id if order else ''}",
        ),
        ("payment page", f"/admin/orders/payment/{latest['Payment']}/change/"),
        ("callbacks list", "/admin/orders/callbackdelivery/"),
        ("callbacks: failed", "/admin/orders/callbackdelivery/?state__exact=failed"),
        ("callbacks: pending", "/admin/orders/callbackdelivery/?state__exact=pending"),
        (
            "callbacks: search order id",
            f"/admin/orders/callbackdelivery/?q={called.public_id if called else ''}",
        ),
        ("callback page", f"/admin/orders/callbackdelivery/{latest['CallbackDelivery']}/change/"),
        ("order events list", "/admin/orders/orderevent/"),
        (
            "order events: search order id",
            f"/admin/orders/orderevent/?q={order.public_id if order else ''}",
        ),
        ("order event page", f"/admin/orders/orderevent/{latest['OrderEvent']}/change/"),
        ("holds list", "/admin/orders/reservation/"),
        ("holds: released", "/admin/orders/reservation/?outcome__exact=released"),
        ("hold page", f"/admin/orders/reservation/{latest['Reservation']}/change/"),
        ("campaign events list", "/admin/coupons/campaignevent/"),
        (
            "campaign events: of the campaign",
            f"/admin/coupons/campaignevent/?campaign__id__exact={campaign.pk}",
        ),
        ("API clients list", "/admin/shop/apiclient/"),
        ("client page", f"/admin/shop/apiclient/{client.pk if client else 0}/change/"),
        ("API keys list", "/admin/shop/apikey/"),
        ("rate limits", "/admin/shop/ratelimit/"),
        ("rate limit changes", "/admin/shop/ratelimitchange/"),
        ("audit log", "/admin/shop/auditentry/"),
        ("stores list", "/admin/shop/store/"),
        ("products list", "/admin/shop/product/"),
    ]


def _wait_for_history(campaign_id: int, limit_seconds: float = 120.0) -> float:
    """Seconds until the background filler of the campaign's minute history finished."""
    from infra import fast

    began = time.monotonic()
    key = f"cop:admin:minutes:{campaign_id}:filling"
    while fast.client().exists(key) and time.monotonic() - began < limit_seconds:
        time.sleep(0.2)
    return time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/campaign_volume"
        ),
    )
    parser.add_argument("--runs", type=int, default=5, help="Timed requests per page.")
    parser.add_argument(
        "--only", default="", help="Time only the pages whose name contains this (all: '')."
    )
    options = parser.parse_args()
    _setup(options.database_url)

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from coupons import selectors as coupons_selectors
    from infra import fast
    from orders.models import Order

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client(SERVER_NAME="localhost")
    client.force_login(user)
    # The worst case: no minute history kept, no page cached.
    for pattern in ["cop:admin:*", "*:admin:campaign:*", "*:admin:workers*"]:
        for key in fast.client().scan_iter(pattern):
            fast.client().delete(key)
    orders = Order.objects.order_by("-id").values_list("id", flat=True).first() or 0
    campaign = coupons_selectors.campaigns_with_issued().order_by("-coupons_issued").first()
    print(
        f"database {connection.settings_dict['NAME']}: about {orders:,} orders; "
        f"pages timed in-process (Django test client), {options.runs} runs each after a first."
    )
    pages = [(name, url) for name, url in _pages() if options.only in name]
    firsts: dict[str, tuple[int, float]] = {}
    for name, url in pages:
        began = time.perf_counter()
        response = client.get(url)
        firsts[name] = (response.status_code, (time.perf_counter() - began) * 1000)
    history = _wait_for_history(campaign.pk) if campaign else 0.0
    timings = []
    for name, url in pages:
        samples = []
        for _ in range(options.runs):
            began = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - began) * 1000)
        status, first = firsts[name]
        timings.append(Timing(name, url, status, first, statistics.median(samples), max(samples)))
    print(
        f"(the campaign page's minute history finished in the background {history:.1f} s "
        "after its first request)\n"
    )
    print(f"| page | status | first (ms) | median of {options.runs} (ms) | slowest (ms) |")
    print("|---|---|---:|---:|---:|")
    for t in timings:
        flag = " **over 500 ms**" if t.median_ms > BUDGET_MS else ""
        print(
            f"| {t.name} | {t.status} | {t.first_ms:,.0f} | {t.median_ms:,.0f}{flag} | "
            f"{t.max_ms:,.0f} |"
        )
    slow = [t for t in timings if t.median_ms > BUDGET_MS or t.status != OK]
    print(
        f"\n{len(timings) - len(slow)} of {len(timings)} pages answer 200 within "
        f"{BUDGET_MS:.0f} ms (median)."
    )
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
