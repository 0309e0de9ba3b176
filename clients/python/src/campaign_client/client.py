"""The chatbot API v1 as typed calls (the integrator's guide, "Endpoints").

Every call may be retried (RetryPolicy): reads are idempotent, a claim and an order carry an
Idempotency-Key made once per call and sent unchanged on every attempt, and a cancel answers
the same when repeated. So a retry never makes a second coupon or order.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from campaign_client.errors import (
    ApiError,
    CampaignClientError,
    TransportFailed,
    WaitTimedOut,
    error_class,
)
from campaign_client.models import Campaign, Coupon, Order, OrderLine, Page, Product
from campaign_client.retry import RetryPolicy, retry_after_seconds

__version__ = "0.1.0"

Line = OrderLine | tuple[str, int] | Mapping[str, Any]

# Network failures after which the request may be sent again; not, say, an unsupported URL.
_RETRYABLE_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def new_idempotency_key() -> str:
    """A fresh key for one shopper intent. Store it before the first attempt if a retry may
    come from another process (after a crash, say), and pass it as `idempotency_key`."""
    return str(uuid.uuid4())


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _line(line: Line) -> dict[str, Any]:
    if isinstance(line, OrderLine):
        return {"sku": line.sku, "quantity": line.quantity}
    if isinstance(line, tuple):
        sku, quantity = line
        return {"sku": sku, "quantity": quantity}
    return {"sku": line["sku"], "quantity": line["quantity"]}


class CampaignClient:
    """A client of the service at `base_url` (e.g. `http://127.0.0.1:8000`) with an API key.

    Use it as a context manager, or call `close()`: it keeps one connection pool. `transport`,
    `sleep`, `clock` and `rng` are there for tests (httpx.MockTransport, a fake clock)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": f"campaign-orders-client/{__version__}",
            },
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CampaignClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- campaigns and coupons ----------------------------------------------------------------

    def list_campaigns(self) -> list[Campaign]:
        return [Campaign.from_json(c) for c in self._request("GET", "/api/v1/campaigns/").json()]

    def get_campaign(self, slug: str) -> Campaign:
        """One campaign: its terms, what is left and how long its line is (`backlog`)."""
        response = self._request("GET", f"/api/v1/campaigns/{_segment(slug)}/")
        return Campaign.from_json(response.json())

    def claim_coupon(
        self, slug: str, customer_id: str, *, idempotency_key: str | None = None
    ) -> Coupon:
        """Issue one of the campaign's coupons to the shopper. The same key again answers the
        same coupon. Raises Conflict (`limit_reached`, `campaign_not_active`), SoldOut."""
        response = self._request(
            "POST",
            f"/api/v1/campaigns/{_segment(slug)}/claims/",
            body={"customer_id": customer_id},
            idempotency_key=idempotency_key or new_idempotency_key(),
        )
        return Coupon.from_json(response.json())

    def list_coupons(self, customer_id: str) -> list[Coupon]:
        """The shopper's coupons from this client, each `issued`, `reserved`, `redeemed` or
        `expired`."""
        response = self._request("GET", f"/api/v1/customers/{_segment(customer_id)}/coupons/")
        return [Coupon.from_json(c) for c in response.json()["results"]]

    def list_products(
        self, *, search: str | None = None, store: str | None = None, cursor: str | None = None
    ) -> Page[Product]:
        params = {k: v for k, v in (("search", search), ("store", store), ("cursor", cursor)) if v}
        data = self._request("GET", "/api/v1/products/", params=params).json()
        return Page.from_links(tuple(Product.from_json(p) for p in data["results"]), data)

    # --- orders -------------------------------------------------------------------------------

    def place_order(
        self,
        customer_id: str,
        items: Iterable[Line],
        *,
        coupon_code: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Order:
        """Place an order: answered at once, `received`, with its place in line
        (`queue_position`, `estimated_wait_seconds`). `items` are OrderLine, (sku, quantity)
        or {"sku", "quantity"}. With a key used before (and the same body) the answer is the
        order made then, `replayed` True, with its current status. Raises InvalidRequest,
        Conflict (`out_of_stock`, `budget_exhausted`, `campaign_not_active`), SoldOut,
        IdempotencyKeyReused."""
        body: dict[str, Any] = {"customer_id": customer_id, "items": [_line(i) for i in items]}
        if coupon_code is not None:
            body["coupon_code"] = coupon_code
        if callback_url is not None:
            body["callback_url"] = callback_url
        response = self._request(
            "POST",
            "/api/v1/orders/",
            body=body,
            idempotency_key=idempotency_key or new_idempotency_key(),
        )
        return Order.from_json(response.json(), replayed=response.status_code == 200)  # noqa: PLR2004

    def get_order(self, order_id: str) -> Order:
        return Order.from_json(self._request("GET", f"/api/v1/orders/{_segment(order_id)}/").json())

    def list_orders(
        self, *, customer_id: str | None = None, cursor: str | None = None
    ) -> Page[Order]:
        """This client's orders, newest first, 50 a page."""
        params = {k: v for k, v in (("customer_id", customer_id), ("cursor", cursor)) if v}
        data = self._request("GET", "/api/v1/orders/", params=params).json()
        return Page.from_links(tuple(Order.from_json(o) for o in data["results"]), data)

    def cancel_order(self, order_id: str) -> Order:
        """Cancel an order not paid yet; a cancelled one answers the same again. Raises
        Conflict `not_cancellable` once it is paid or otherwise final."""
        response = self._request("POST", f"/api/v1/orders/{_segment(order_id)}/cancel/")
        return Order.from_json(response.json())

    def wait_for_order(
        self,
        order_id: str,
        *,
        timeout: float = 60.0,
        min_interval: float = 2.0,
        max_interval: float = 30.0,
    ) -> Order:
        """Poll the order until it is final, pacing the polls by its estimated wait (between
        `min_interval` and `max_interval` seconds: by default the integrator guide's pace,
        "Polling an order", at most one poll every 2 s). A callback_url spares the polling.
        Raises WaitTimedOut, carrying the last order read, after `timeout` seconds."""
        deadline = self._clock() + timeout
        while True:
            order = self.get_order(order_id)
            if order.is_final:
                return order
            left = deadline - self._clock()
            if left <= 0:
                raise WaitTimedOut(order)
            pause = min(max(order.estimated_wait_seconds, min_interval), max_interval)
            self._sleep(min(pause, left))

    # --- the wire -----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """Send, retrying as `self.retry` allows with the same key, and answer the success;
        raise the error (an ApiError subclass or TransportFailed) otherwise."""
        policy = self.retry
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            failure: CampaignClientError
            retry_after: float | None = None
            try:
                response = self._http.request(
                    method, path, json=body, params=params, headers=headers
                )
            except _RETRYABLE_TRANSPORT as exc:
                failure = TransportFailed(f"{method} {path}: {type(exc).__name__}: {exc}")
                failure.__cause__ = exc
            else:
                if response.status_code < 400:  # noqa: PLR2004
                    return response
                answered = _api_error(response)
                if response.status_code not in policy.statuses:
                    raise answered
                failure, retry_after = answered, answered.retry_after
            if attempt >= policy.max_attempts:
                raise failure
            wait = policy.delay(attempt, retry_after, self._rng)
            if wait > policy.max_wait or self._clock() - started + wait > policy.max_elapsed:
                raise failure
            self._sleep(wait)


def _api_error(response: httpx.Response) -> ApiError:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or "error" not in data:
        # Not the service's envelope (a proxy's page, say): the status is all there is.
        data = {"error": f"http_{response.status_code}", "detail": response.text[:200]}
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    if retry_after is None and isinstance(data.get("retry_after"), int | float):
        retry_after = float(data["retry_after"])
    return error_class(response.status_code)(
        status=response.status_code,
        error=str(data["error"]),
        detail=str(data.get("detail", "")),
        fields=data.get("fields") if isinstance(data.get("fields"), dict) else None,
        retry_after=retry_after,
        request_id=response.headers.get("X-Request-ID"),
        body=data,
    )
