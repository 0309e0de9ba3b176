"""The chaos suite's chatbot: shoppers that claim a coupon and order with it, over HTTP, the
way a careful chatbot platform would, and a record of everything each one was told.

Open loop: shopper i starts at i / rate seconds whatever the server is doing. Each request
carries an Idempotency-Key and is retried with the same key until it gets a definite
answer: after a refused connection or a time-out (the outcome is unknown, so only the same
key is safe), after a 429 (waiting its Retry-After), and after a 5xx (which is also counted:
the contract allows none for a well-formed request). The record is what the invariant
checks compare with the database afterwards (Jepsen's way): which orders the chatbot was
told were accepted, which coupons it was given, and every answer that broke the contract.

Besides the main path, some shoppers replay their order (same key, same body: the same
order must come back), claim a second coupon (the per-customer limit must refuse it), or
cancel their order (200 while unpaid, 409 not_cancellable after).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

REQUEST_TIMEOUT = 10.0
GIVE_UP_AFTER = 120.0  # seconds of retrying one request before the shopper walks away
CONNECTIONS = 24
DECLINE_EVERY = 10  # customer ids starting with "decline" are declined by the sandbox
REPLAY_EVERY = 17
SECOND_CLAIM_EVERY = 23
CANCEL_EVERY = 29


@dataclass
class Record:
    """What the shoppers were told."""

    answers: Counter[str] = field(default_factory=Counter)  # "order 202", "claim 410", ...
    server_errors: list[str] = field(default_factory=list)  # 5xx answers, with their body
    transport_errors: Counter[str] = field(default_factory=Counter)  # refused, time-out, ...
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> order id
    coupons: dict[str, str] = field(default_factory=dict)  # customer -> coupon code
    broken_promises: list[str] = field(default_factory=list)  # answers the contract forbids
    gave_up: int = 0
    started: int = 0
    first_5xx_at: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "shoppers": self.started,
            "answers": dict(sorted(self.answers.items())),
            "server_errors": len(self.server_errors),
            "server_error_samples": self.server_errors[:5],
            "transport_errors": dict(self.transport_errors),
            "accepted": len(self.accepted),
            "coupons": len(self.coupons),
            "broken_promises": self.broken_promises[:20],
            "gave_up": self.gave_up,
        }


class Shoppers:
    def __init__(
        self, *, base_url: str, api_key: str, slug: str, skus: list[str], tag: str, seed: int = 7
    ) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.slug = slug
        self.skus = skus
        self.tag = tag
        self.record = Record()
        self.rng = random.Random(seed)  # noqa: S311  (a load pattern, not a secret)

    def run(self, *, shoppers: int, rate: float) -> Record:
        asyncio.run(self._run(shoppers, rate))
        return self.record

    async def _run(self, shoppers: int, rate: float) -> None:
        limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, limits=limits, timeout=REQUEST_TIMEOUT
        ) as http:
            start = time.monotonic()
            tasks = []
            for i in range(shoppers):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self._shopper(http, i)))
                self.record.started += 1
            await asyncio.gather(*tasks)

    async def _call(
        self, http: httpx.AsyncClient, kind: str, path: str, *, key: str, body: dict | None
    ) -> tuple[int, dict[str, Any]] | None:
        """One request, retried with the same key until a definite answer; None if the shopper
        gave up. A 5xx is recorded and retried like an unknown outcome."""
        deadline = time.monotonic() + GIVE_UP_AFTER
        while time.monotonic() < deadline:
            try:
                response = await http.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx.TimeoutException:
                self.record.transport_errors[f"{kind} time-out"] += 1
                await asyncio.sleep(0.5)
                continue
            except httpx.TransportError as exc:
                self.record.transport_errors[f"{kind} {type(exc).__name__}"] += 1
                await asyncio.sleep(0.5)
                continue
            status = response.status_code
            self.record.answers[f"{kind} {status}"] += 1
            try:
                payload = response.json()
            except ValueError:
                payload = {}
                self.record.broken_promises.append(f"{kind} {status}: not JSON")
            if status >= 500:  # noqa: PLR2004
                self.record.server_errors.append(f"{kind} {status} {response.text[:200]}")
                await asyncio.sleep(0.5)
                continue
            if status == 429:  # noqa: PLR2004
                if "retry_after" not in payload or "Retry-After" not in response.headers:
                    self.record.broken_promises.append(f"{kind} 429 without Retry-After")
                wait = float(response.headers.get("Retry-After", "1"))
                await asyncio.sleep(min(wait, 5.0) * (0.5 + self.rng.random()))
                continue
            return status, payload
        self.record.gave_up += 1
        return None

    async def _shopper(self, http: httpx.AsyncClient, i: int) -> None:
        prefix = "decline" if i % DECLINE_EVERY == 0 else "shopper"
        customer = f"{prefix}-{self.tag}-{i}"
        claim_path = f"/api/v1/campaigns/{self.slug}/claims/"
        answer = await self._call(
            http, "claim", claim_path, key=f"claim-{self.tag}-{i}", body={"customer_id": customer}
        )
        if answer is None or answer[0] != 201:  # noqa: PLR2004
            return
        code = answer[1]["code"]
        self.record.coupons[customer] = code
        if i % SECOND_CLAIM_EVERY == 1:
            again = await self._call(
                http,
                "claim",
                claim_path,
                key=f"claim2-{self.tag}-{i}",
                body={"customer_id": customer},
            )
            if again is not None and again[0] == 201:  # noqa: PLR2004
                self.record.broken_promises.append(f"{customer} got a second coupon")
        quantity = 2 if self.rng.random() < 0.2 else 1  # noqa: PLR2004
        body = {
            "customer_id": customer,
            "items": [{"sku": self.rng.choice(self.skus), "quantity": quantity}],
            "coupon_code": code,
        }
        key = f"order-{self.tag}-{i}"
        answer = await self._call(http, "order", "/api/v1/orders/", key=key, body=body)
        if answer is None or answer[0] not in (200, 202):
            return
        order_id = answer[1]["id"]
        self.record.accepted[key] = order_id
        if i % REPLAY_EVERY == 2:  # noqa: PLR2004
            replay = await self._call(http, "replay", "/api/v1/orders/", key=key, body=body)
            if replay is not None and (replay[0] != 200 or replay[1].get("id") != order_id):  # noqa: PLR2004
                self.record.broken_promises.append(f"replay of {key} answered {replay[0]}")
        if i % CANCEL_EVERY == 3:  # noqa: PLR2004
            cancel = await self._call(
                http, "cancel", f"/api/v1/orders/{order_id}/cancel/", key=f"cancel-{key}", body={}
            )
            if cancel is not None and cancel[0] not in (200, 409):
                self.record.broken_promises.append(f"cancel of {order_id} answered {cancel[0]}")
