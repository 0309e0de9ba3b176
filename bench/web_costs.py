"""What Django, the middleware and DRF add to the three hot endpoints (issue 30, lever 3):
the claim POST, the order POST and the polled order GET, each timed in this process through
the WSGI application gunicorn would call and by its service alone, so the difference is the
framework's share (docs/performance.md, "The web layer on the hot endpoints").

Usage: DATABASE_URL=postgres://postgres@127.0.0.1:5432/campaign_bench \
       .venv/bin/python -m bench.web_costs [requests] [--rounds N] [--profile ENDPOINT]

Each round claims, places and polls `requests` fresh coupons and orders by the services, then
as many through the WSGI app, and prints the CPU ms per request in this process (PostgreSQL's
backend apart), then the median of the rounds. The same environment as bench.stage_costs
(its REDIS_URL, its sandbox gateway port unused here), and config/wsgi.py's settings for the
web (no connection health check, the lock timeout). `--profile claim|order|get` prints
cProfile's top functions by CPU for that endpoint's first WSGI run and writes the profile
to bench/runs/web_costs.<endpoint>.prof. No sockets and no gunicorn: its own share is what the
end-to-end run's web CPU adds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench.stage_costs import (  # its environment, too
    CALLBACK_URL,
    ROOT,
    backend_cpu,
    bench_campaign,
    web_environment,
)

API = "/api/v1"
ENDPOINTS = ("claim", "order", "get")


def wsgi_call(app: Any, method: str, path: str, api_key: str, body: Any = None, **headers: str):
    """One request as gunicorn hands it over: (status line, headers, body bytes)."""
    raw = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "application/json",
        "HTTP_AUTHORIZATION": f"Bearer {api_key}",
        "wsgi.input": io.BytesIO(raw),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body is not None:
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(raw))
    for name, value in headers.items():
        environ[f"HTTP_{name.upper()}"] = value
    got = []
    chunks = app(environ, lambda status, hdrs, *_: got.append((status, hdrs)))
    content = b"".join(chunks)
    chunks.close()  # request_finished, as gunicorn's close: Django's per-request cleanup
    return got[0][0], got[0][1], content


def timed(label: str, count: int, fn, profile: str | None = None) -> float:
    """Run fn, print and return its CPU ms per request in this process."""
    import cProfile  # here: bench/profile.py shadows the profile module cProfile imports
    import pstats

    pg = backend_cpu()
    cpu = time.process_time()
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not waits
    if profiler:
        profiler.runcall(fn)
    else:
        fn()
    cpu = (time.process_time() - cpu) / count * 1000
    pg = (backend_cpu() - pg) / count * 1000
    print(f"{label:<18} {count:>5} requests  {cpu:7.3f} ms CPU/request here  {pg:6.3f} ms in PG")
    if profiler:
        runs = ROOT / "bench" / "runs"
        runs.mkdir(exist_ok=True)
        profiler.dump_stats(runs / f"web_costs.{profile}.prof")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return cpu


@dataclass
class Bench:
    """The campaign, product and API client every round claims, orders and polls with."""

    app: Any
    client_id: int
    key: str
    slug: str
    campaign_id: int
    sku: str
    profile: str | None = None
    results: dict[str, list[float]] = field(default_factory=dict)

    def record(self, name: str, via: str, count: int, fn) -> None:
        profile = name if via == "wsgi" and self.profile == name else None
        if profile:
            self.profile = None  # the first WSGI round only
        self.results.setdefault(f"{name} {via}", []).append(
            timed(f"{name} ({via})", count, fn, profile)
        )

    def order_body(self, coupon) -> dict[str, Any]:
        return {
            "customer_id": coupon.customer_id,
            "items": [{"sku": self.sku, "quantity": 1}],
            "coupon_code": coupon.code,
            "callback_url": CALLBACK_URL,
        }

    def by_services(self, customers: list[str]) -> None:
        from coupons import services as coupons_services
        from orders import selectors, services
        from orders.documents import order_document

        coupons, orders = [], []

        def claim() -> None:
            coupons.extend(
                coupons_services.coupon_claim(
                    client_id=self.client_id,
                    slug=self.slug,
                    customer_id=c,
                    idempotency_key=f"k-{c}",
                ).coupon
                for c in customers
            )

        def order() -> None:
            for c in coupons:
                placed = services.order_place(
                    client_id=self.client_id,
                    customer_id=c.customer_id,
                    items=[services.ItemIn(sku=self.sku, quantity=1)],
                    coupon_code=c.code,
                    callback_url=CALLBACK_URL,
                    idempotency_key=f"o-{c.pk}",
                )
                order_document(placed.order, lines=placed.lines, queue=placed.queue)
                orders.append(placed.order.public_id)

        def get() -> None:
            for public_id in orders:
                o = selectors.order_get(client_id=self.client_id, public_id=public_id)
                lines = selectors.lines_by_order([o.pk])[o.pk]
                order_document(o, lines=lines, queue=selectors.order_queue_spot(o))

        for name, fn in zip(ENDPOINTS, (claim, order, get), strict=True):
            self.record(name, "service", len(customers), fn)

    def by_wsgi(self, customers: list[str]) -> None:
        from coupons.models import Coupon

        coupons, orders = [], []

        def call(method: str, path: str, want: str, body: Any = None, **headers: str) -> bytes:
            status, _, content = wsgi_call(self.app, method, path, self.key, body, **headers)
            if not status.startswith(want):
                raise RuntimeError(f"{method} {path}: expected {want}, got {status}")
            return content

        def claim() -> None:
            for c in customers:
                path = f"{API}/campaigns/{self.slug}/claims/"
                call("POST", path, "201", {"customer_id": c}, idempotency_key=f"k-{c}")
            coupons.extend(
                Coupon.objects.filter(campaign_id=self.campaign_id, customer_id__in=customers)
            )

        def order() -> None:
            for c in coupons:
                content = call(
                    "POST", f"{API}/orders/", "202", self.order_body(c), idempotency_key=f"o-{c.pk}"
                )
                orders.append(json.loads(content)["id"])

        def get() -> None:
            for public_id in orders:
                call("GET", f"{API}/orders/{public_id}/", "200")

        for name, fn in zip(ENDPOINTS, (claim, order, get), strict=True):
            self.record(name, "wsgi", len(customers), fn)

    def summary(self) -> None:
        print("\nmedian CPU ms/request here:  service    wsgi  framework")
        for name in ENDPOINTS:
            service = _median(self.results[f"{name} service"])
            wsgi = _median(self.results[f"{name} wsgi"])
            print(f"  {name:<26} {service:7.3f} {wsgi:7.3f} {wsgi - service:7.3f}")


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def setup(count: int, profile: str | None) -> Bench:
    """Database, limits that never refuse, a campaign and product for `count` orders."""
    from devtools.bootstrap import ensure_database

    ensure_database(os.environ["DATABASE_URL"])
    web_environment()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from config.wsgi import application
    from infra import fast
    from shop import services as shop_services
    from shop.models import RateLimit

    fast.client().flushdb()
    # Admission stays on (its Redis round trip is part of a claim's cost), never refusing.
    for scope in (RateLimit.Scope.CLIENT_REQUESTS, RateLimit.Scope.CUSTOMER_REQUESTS):
        limits = {"per_second": 1e6, "burst": 10**6}
        RateLimit.objects.update_or_create(scope=scope, defaults=limits)
    product, campaign, client = bench_campaign(count)
    key = shop_services.api_key_issue(client_id=client.pk).raw
    # Warm up: the first request loads the URLconf and the API's modules (a quarter second).
    status, _, _ = wsgi_call(application, "GET", f"{API}/orders/{uuid.UUID(int=0)}/", key)
    if not status.startswith("404"):
        raise RuntimeError(f"warm-up: expected 404, got {status}")
    return Bench(
        app=application,
        client_id=client.pk,
        key=key,
        slug=campaign.slug,
        campaign_id=campaign.pk,
        sku=product.sku,
        profile=profile,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("requests", type=int, nargs="?", default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", choices=ENDPOINTS)
    args = parser.parse_args()
    bench = setup(args.requests * 2 * args.rounds, args.profile)
    print(f"web_costs: {args.requests} requests an endpoint a round, {args.rounds} rounds")
    for rnd in range(args.rounds):
        for via, run in (("service", bench.by_services), ("wsgi", bench.by_wsgi)):
            run([f"r{rnd}-{via}-{i}" for i in range(args.requests)])
    bench.summary()


if __name__ == "__main__":
    main()
