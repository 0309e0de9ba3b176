"""Each operation: the request it sends (method, path, headers, body) and the typed answer it
reads, and every error status mapped to its exception with the envelope's fields."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest
from helpers_campaign_client import (
    CAMPAIGN,
    COUPON,
    KEY,
    FakeClock,
    Recorder,
    client_for,
    error,
    order_json,
)

from campaign_client import (
    ApiError,
    Conflict,
    IdempotencyKeyReused,
    InvalidRequest,
    NotFound,
    OrderLine,
    OrderStatus,
    Overloaded,
    ServerError,
    SoldOut,
    Unauthorized,
    WaitTimedOut,
)


def test_place_order_sends_the_documented_request_and_reads_the_place_in_line() -> None:
    # given
    recorder = Recorder(httpx.Response(202, json=order_json()))
    client, _ = client_for(recorder)
    # when
    order = client.place_order(
        "c-42",
        [OrderLine("TM-MILKTEA-L", 2), ("TM-FRUITTEA", 1), {"sku": "BK-1", "quantity": 3}],
        coupon_code="AWSYY3YS7WWP",
        callback_url="https://bot.example.com/hooks/orders",
    )
    # then
    (request,) = recorder.requests
    assert (request.method, request.url.path) == ("POST", "/api/v1/orders/")
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert recorder.bodies() == [
        {
            "customer_id": "c-42",
            "items": [
                {"sku": "TM-MILKTEA-L", "quantity": 2},
                {"sku": "TM-FRUITTEA", "quantity": 1},
                {"sku": "BK-1", "quantity": 3},
            ],
            "coupon_code": "AWSYY3YS7WWP",
            "callback_url": "https://bot.example.com/hooks/orders",
        }
    ]
    assert (order.status, order.reason, order.queue_position, order.estimated_wait_seconds) == (
        "received",
        None,
        12,
        3,
    )
    assert (order.subtotal, order.discount, order.payable, order.currency) == (
        3600,
        2500,
        1100,
        "CNY",
    )
    assert order.items == (OrderLine("TM-MILKTEA-L", 2, 1800),)
    assert order.created_at == datetime(2026, 11, 29, 17, tzinfo=timezone.utc)
    assert not order.replayed
    assert not order.is_final


def test_optional_fields_left_out_are_not_sent() -> None:
    recorder = Recorder(httpx.Response(202, json=order_json()))
    client, _ = client_for(recorder)
    client.place_order("c-42", [("TM-MILKTEA-L", 1)])
    assert recorder.bodies() == [
        {"customer_id": "c-42", "items": [{"sku": "TM-MILKTEA-L", "quantity": 1}]}
    ]


def test_a_replayed_order_is_marked() -> None:
    recorder = Recorder(httpx.Response(200, json=order_json("paid")))
    client, _ = client_for(recorder)
    order = client.place_order("c-42", [("TM-MILKTEA-L", 1)], idempotency_key="k-1")
    assert order.replayed
    assert order.is_final
    assert (order.queue_position, order.estimated_wait_seconds) == (0, 0)


def test_claim_coupon_and_list_coupons() -> None:
    # given
    recorder = Recorder(
        httpx.Response(201, json=COUPON), httpx.Response(200, json={"results": [COUPON]})
    )
    client, _ = client_for(recorder)
    # when
    coupon = client.claim_coupon("spring-free-order", "c-42")
    listed = client.list_coupons("c-42")
    # then
    claim, listing = recorder.requests
    assert (claim.method, claim.url.path) == ("POST", "/api/v1/campaigns/spring-free-order/claims/")
    assert claim.headers["Idempotency-Key"]
    assert recorder.bodies()[0] == {"customer_id": "c-42"}
    assert (listing.method, listing.url.path) == ("GET", "/api/v1/customers/c-42/coupons/")
    assert "Idempotency-Key" not in listing.headers
    assert (coupon.code, coupon.status, coupon.max_discount) == ("AWSYY3YS7WWP", "issued", 2500)
    assert listed == [coupon]


def test_test_mode_is_read_from_livemode_and_live_when_absent() -> None:
    recorder = Recorder(
        httpx.Response(202, json=order_json(livemode=False)),
        httpx.Response(202, json=order_json()),
        httpx.Response(200, json={**CAMPAIGN, "livemode": False}),
    )
    client, _ = client_for(recorder)
    test_order = client.place_order("c-42", [("TEST-TM-MILKTEA-L", 1)], idempotency_key="k-1")
    older = client.place_order("c-42", [("TM-MILKTEA-L", 1)], idempotency_key="k-2")
    campaign = client.get_campaign("spring-free-order-test")
    assert (test_order.livemode, older.livemode, campaign.livemode) == (False, True, False)


def test_campaigns() -> None:
    recorder = Recorder(httpx.Response(200, json=[CAMPAIGN]), httpx.Response(200, json=CAMPAIGN))
    client, _ = client_for(recorder)
    (listed,) = client.list_campaigns()
    one = client.get_campaign("spring-free-order")
    assert [r.url.path for r in recorder.requests] == [
        "/api/v1/campaigns/",
        "/api/v1/campaigns/spring-free-order/",
    ]
    assert listed == one
    assert (one.coupon.kind, one.coupon.max_discount) == ("free_order", 2500)
    assert (one.backlog.orders_waiting, one.backlog.estimated_wait_seconds) == (12, 1)
    assert one.coupons_remaining == 999990


def test_pages_carry_the_cursor_of_the_next() -> None:
    # given
    page = {
        "next": "http://service.test/api/v1/orders/?cursor=cD0yMDI2&customer_id=c-42",
        "previous": None,
        "results": [order_json("paid")],
    }
    recorder = Recorder(httpx.Response(200, json=page))
    client, _ = client_for(recorder)
    # when
    first = client.list_orders(customer_id="c-42")
    client.list_orders(customer_id="c-42", cursor=first.next_cursor)
    # then
    assert first.next_cursor == "cD0yMDI2"
    assert first.previous_cursor is None
    assert [o.status for o in first.results] == ["paid"]
    assert dict(recorder.requests[1].url.params) == {"customer_id": "c-42", "cursor": "cD0yMDI2"}


def test_products() -> None:
    product = {
        "sku": "TM-FRUITTEA",
        "name": "Fruit tea",
        "store": "tea-house",
        "price": 1500,
        "currency": "CNY",
        "in_stock": True,
    }
    recorder = Recorder(
        httpx.Response(200, json={"next": None, "previous": None, "results": [product]})
    )
    client, _ = client_for(recorder)
    page = client.list_products(search="tea")
    assert dict(recorder.requests[0].url.params) == {"search": "tea"}
    assert page.results[0].price == 1500
    assert page.next_cursor is None


def test_get_and_cancel_an_order_quote_the_id() -> None:
    recorder = Recorder(httpx.Response(200, json=order_json("cancelled")))
    client, _ = client_for(recorder)
    client.get_order("0b6c7c6e-5d0c-4f55-9a37-9d1f4a0d8a11")
    cancelled = client.cancel_order("../x")
    assert [(r.method, r.url.raw_path) for r in recorder.requests] == [
        ("GET", b"/api/v1/orders/0b6c7c6e-5d0c-4f55-9a37-9d1f4a0d8a11/"),
        ("POST", b"/api/v1/orders/..%2Fx/cancel/"),
    ]
    assert cancelled.status == OrderStatus.CANCELLED


def test_an_unknown_status_reason_or_field_does_not_break_the_client() -> None:
    recorder = Recorder(
        httpx.Response(200, json=order_json("on_hold", reason="new_reason", gift_wrap=True))
    )
    client, _ = client_for(recorder)
    order = client.get_order("x")
    assert (order.status, order.reason) == ("on_hold", "new_reason")
    assert order.raw["gift_wrap"] is True


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        (error(400, "invalid", fields={"items": ["Unknown SKU 'X'."]}), InvalidRequest, "invalid"),
        (error(401, "unauthorized"), Unauthorized, "unauthorized"),
        (error(404, "not_found"), NotFound, "not_found"),
        (error(405, "method_not_allowed"), ApiError, "method_not_allowed"),
        (error(409, "out_of_stock"), Conflict, "out_of_stock"),
        (error(410, "sold_out"), SoldOut, "sold_out"),
        (error(422, "idempotency_key_reused"), IdempotencyKeyReused, "idempotency_key_reused"),
        (error(429, "overloaded", retry_after=3), Overloaded, "overloaded"),
        (error(500, "server_error"), ServerError, "server_error"),
        (httpx.Response(502, text="<html>Bad gateway</html>"), ServerError, "http_502"),
    ],
)
def test_errors_carry_the_envelope(answer: httpx.Response, kind: type, code: str) -> None:
    # given: no retries, so every answer is seen as it is
    client, _ = client_for(Recorder(answer), max_attempts=1)
    # when
    with pytest.raises(kind) as raised:
        client.place_order("c-42", [("X", 1)])
    # then
    failure = raised.value
    assert type(failure) is kind
    assert (failure.status, failure.error) == (answer.status_code, code)
    assert failure.detail
    if code == "invalid":
        assert failure.fields == {"items": ["Unknown SKU 'X'."]}
    if code == "overloaded":
        assert failure.retry_after == 3
    if answer.headers.get("X-Request-ID"):
        assert failure.request_id == answer.headers["X-Request-ID"]


def test_wait_for_order_polls_at_the_pace_of_the_estimated_wait() -> None:
    # given: in line (about 3 s), then paying, then paid
    recorder = Recorder(
        httpx.Response(200, json=order_json("received")),
        httpx.Response(200, json=order_json("reserved")),
        httpx.Response(200, json=order_json("paid")),
    )
    client, clock = client_for(recorder)
    # when
    order = client.wait_for_order("x", min_interval=0.5, max_interval=5)
    # then
    assert order.status == "paid"
    assert clock.slept == [3, 0.5]


def test_wait_for_order_keeps_the_guides_pace_by_default() -> None:
    # given: an order whose estimated wait says 0 s, then 120 s
    recorder = Recorder(
        httpx.Response(
            200, json=order_json("received", queue={"position": 1, "estimated_wait_seconds": 0})
        ),
        httpx.Response(
            200, json=order_json("received", queue={"position": 900, "estimated_wait_seconds": 120})
        ),
        httpx.Response(200, json=order_json("paid")),
    )
    client, clock = client_for(recorder)
    # when
    client.wait_for_order("x", timeout=300)
    # then: never more than one poll every 2 s, never a wait past 30 s
    assert clock.slept == [2.0, 30.0]


def test_wait_for_order_gives_up_with_the_last_order() -> None:
    recorder = Recorder(httpx.Response(200, json=order_json("received")))
    clock = FakeClock()
    client, _ = client_for(recorder, clock)
    with pytest.raises(WaitTimedOut) as raised:
        client.wait_for_order("x", timeout=10)
    assert raised.value.order.status == "received"
    assert clock.now == 10
