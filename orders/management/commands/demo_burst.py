"""Send a burst of chatbot traffic to a running stack (`make run`), so that the admin's
campaign and backlog pages show a live campaign."""

from __future__ import annotations

import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from django.core.management.base import BaseCommand, CommandError, CommandParser

from shop import services as shop_services
from shop.models import ApiClient

SKUS = ["TM-MILKTEA-L", "TM-FRUITTEA", "BB-CLASSIC", "BB-FRIES", "NS-BEEF", "NS-DUMPLING"]


class Command(BaseCommand):
    help = (
        "Claim coupons and place orders through the HTTP API of a running stack, the way a "
        "chatbot does: a few thousand by default, with a progress bar and a summary."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--orders", type=int, default=3000)
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument("--campaign", default="spring-free-order")
        parser.add_argument("--concurrency", type=int, default=16)

    def handle(self, *args: Any, **options: Any) -> None:
        client = ApiClient.objects.filter(name="demo-burst").first() or (
            shop_services.api_client_create(name="demo-burst")
        )
        key = shop_services.api_key_issue(client_id=client.pk, label="demo_burst").raw
        run = uuid.uuid4().hex[:6]
        total = options["orders"]
        headers = {"Authorization": f"Bearer {key}"}
        with (
            httpx.Client(base_url=options["url"], headers=headers, timeout=30) as http,
            ThreadPoolExecutor(options["concurrency"]) as pool,
        ):
            try:
                http.get("/api/v1/campaigns/").raise_for_status()
            except httpx.HTTPError as exc:
                raise CommandError(
                    f"No stack answering at {options['url']} ({exc}); start `make run`."
                ) from exc

            def one(i: int) -> str:
                customer = f"demo-{run}-{i}"
                claim = http.post(
                    f"/api/v1/campaigns/{options['campaign']}/claims/",
                    json={"customer_id": customer},
                    headers={"Idempotency-Key": f"claim-{customer}"},
                )
                if claim.status_code != 201:  # noqa: PLR2004
                    return f"claim {claim.json().get('error', claim.status_code)}"
                order = http.post(
                    "/api/v1/orders/",
                    json={
                        "customer_id": customer,
                        "items": [{"sku": SKUS[i % len(SKUS)], "quantity": 1 + i % 2}],
                        "coupon_code": claim.json()["code"],
                    },
                    headers={"Idempotency-Key": f"order-{customer}"},
                )
                return "accepted" if order.status_code == 202 else f"order {order.status_code}"  # noqa: PLR2004

            outcomes: dict[str, int] = {}
            started = time.monotonic()
            for done, outcome in enumerate(pool.map(one, range(total)), start=1):
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if done % 50 == 0 or done == total:
                    self._progress(done, total, time.monotonic() - started)
        sys.stderr.write("\n")
        self.stdout.write(f"{total} shoppers in {time.monotonic() - started:.1f} s: {outcomes}")
        self.stdout.write(f"Watch them in the admin: {options['url']}/admin/")

    def _progress(self, done: int, total: int, elapsed: float) -> None:
        width = 40
        filled = width * done // total
        rate = done / elapsed if elapsed else 0.0
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(f"\r[{bar}] {done}/{total}  {rate:5.0f}/s")
        sys.stderr.flush()
