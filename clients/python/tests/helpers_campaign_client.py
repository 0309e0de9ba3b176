"""Shared by the client's tests: a fake clock, a recording MockTransport, sample answers."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import httpx

from campaign_client import CampaignClient, RetryPolicy

KEY = "cop_test_key"


class FakeClock:
    """Time that moves only when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport that answers from a script (one answer or exception per request, the
    last repeated) and keeps every request."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    def keys(self) -> list[str | None]:
        return [r.headers.get("Idempotency-Key") for r in self.requests]

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


def client_for(
    recorder: Recorder, clock: FakeClock | None = None, **retry: Any
) -> tuple[CampaignClient, FakeClock]:
    clock = clock or FakeClock()
    client = CampaignClient(
        "http://service.test/",
        KEY,
        retry=RetryPolicy(**retry),
        transport=httpx.MockTransport(recorder),
        sleep=clock.sleep,
        clock=clock,
        rng=random.Random(7),  # noqa: S311 (jitter, not a secret)
    )
    return client, clock


def error(status: int, code: str, retry_after: int | None = None, **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"error": code, "detail": f"A sentence about {code}.", **extra}
    headers = {"X-Request-ID": f"req-{status}"}
    if retry_after is not None:
        body["retry_after"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return httpx.Response(status, json=body, headers=headers)


def order_json(status: str = "received", **changes: Any) -> dict[str, Any]:
    return {
        "id": "0b6c7c6e-5d0c-4f55-9a37-9d1f4a0d8a11",
        "status": status,
        "reason": None,
        "customer_id": "c-42",
        "items": [{"sku": "TM-MILKTEA-L", "quantity": 2, "unit_price": 1800}],
        "subtotal": 3600,
        "discount": 2500,
        "payable": 1100,
        "currency": "CNY",
        "coupon_code": "AWSYY3YS7WWP",
        "created_at": "2026-11-29T17:00:00+00:00",
        "updated_at": "2026-11-29T17:00:01+00:00",
        "queue": {"position": 12, "estimated_wait_seconds": 3}
        if status == "received"
        else {"position": 0, "estimated_wait_seconds": 0},
        **changes,
    }


COUPON = {
    "code": "AWSYY3YS7WWP",
    "campaign": "spring-free-order",
    "customer_id": "c-42",
    "status": "issued",
    "max_discount": 2500,
    "currency": "CNY",
    "valid_until": "2026-12-29T16:00:00+00:00",
}

CAMPAIGN = {
    "slug": "spring-free-order",
    "name": "Spring free order",
    "status": "active",
    "starts_at": "2026-11-29T16:00:00+00:00",
    "ends_at": "2026-12-29T16:00:00+00:00",
    "coupon_valid_until": "2026-12-29T16:00:00+00:00",
    "coupon": {"kind": "free_order", "max_discount": 2500, "currency": "CNY"},
    "per_customer_limit": 1,
    "coupons_total": 1000000,
    "coupons_remaining": 999990,
    "budget_total": 300000000000,
    "budget_remaining": 299999975000,
    "backlog": {"orders_waiting": 12, "estimated_wait_seconds": 1},
}
