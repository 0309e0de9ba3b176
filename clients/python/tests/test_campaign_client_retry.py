"""Retries: the same Idempotency-Key on every attempt of one call, Retry-After honoured with
jitter, exponential backoff without it, and limits on attempts, waits and total time."""

from __future__ import annotations

import httpx
import pytest
from helpers_campaign_client import Recorder, client_for, error, order_json

from campaign_client import (
    InvalidRequest,
    Overloaded,
    RetryPolicy,
    ServerError,
    TransportFailed,
)
from campaign_client.retry import retry_after_seconds


def place(client):
    return client.place_order("c-42", [("TM-MILKTEA-L", 2)], coupon_code="AWSYY3YS7WWP")


def test_a_429_is_retried_after_retry_after_with_the_same_key_and_body() -> None:
    # given: overloaded twice, then accepted
    recorder = Recorder(
        error(429, "overloaded", retry_after=2),
        error(429, "overloaded", retry_after=1),
        httpx.Response(202, json=order_json()),
    )
    client, clock = client_for(recorder)
    # when
    order = place(client)
    # then: one key, three attempts, each wait Retry-After plus up to half of it
    assert order.status == "received"
    assert len(set(recorder.keys())) == 1
    assert recorder.keys()[0]
    assert len(recorder.requests) == 3
    assert recorder.bodies()[0] == recorder.bodies()[2]
    first, second = clock.slept
    assert 2 <= first <= 3
    assert 1 <= second <= 1.5


def test_the_jitter_spreads_bots_told_the_same_retry_after() -> None:
    # given: many clients refused with the same Retry-After
    waits = set()
    for seed in range(20):
        recorder = Recorder(error(429, "overloaded", retry_after=1), httpx.Response(200, json=[]))
        client, clock = client_for(recorder)
        client._rng.seed(seed)
        # when
        client.list_campaigns()
        waits.add(round(clock.slept[0], 3))
    # then: they come back at different moments, none before the second is up
    assert len(waits) > 15
    assert min(waits) >= 1


def test_without_retry_after_the_wait_doubles_with_jitter_up_to_its_cap() -> None:
    # given: the service unavailable five times without a Retry-After
    recorder = Recorder(*[error(503, "server_error")] * 5, httpx.Response(200, json=[]))
    client, clock = client_for(recorder, max_attempts=6, base_delay=0.5, max_delay=2)
    # when
    client.list_campaigns()
    # then: each wait between half its step and the step, the steps 0.5, 1, 2, 2, 2
    for wait, step in zip(clock.slept, [0.5, 1, 2, 2, 2], strict=True):
        assert step / 2 <= wait <= step


def test_network_errors_are_retried_with_the_same_key() -> None:
    # given: a refused connection, then a time-out (the order may have been stored), then 200
    recorder = Recorder(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json=order_json("reserved")),
    )
    client, _ = client_for(recorder)
    # when
    order = place(client)
    # then: the replay answer tells that the order was made by an earlier attempt
    assert len(recorder.requests) == 3
    assert len(set(recorder.keys())) == 1
    assert order.replayed
    assert order.status == "reserved"


def test_two_calls_get_two_keys_and_a_given_key_is_sent_as_it_is() -> None:
    # given
    recorder = Recorder(httpx.Response(202, json=order_json()))
    client, _ = client_for(recorder)
    # when
    place(client)
    place(client)
    client.place_order("c-42", [("TM-MILKTEA-L", 2)], idempotency_key="msg-881")
    # then
    first, second, given = recorder.keys()
    assert first != second
    assert given == "msg-881"


def test_after_the_last_attempt_the_error_is_raised_with_its_retry_after() -> None:
    # given
    recorder = Recorder(error(429, "overloaded", retry_after=1))
    client, clock = client_for(recorder, max_attempts=3)
    # when
    with pytest.raises(Overloaded) as raised:
        place(client)
    # then
    assert len(recorder.requests) == 3
    assert len(clock.slept) == 2
    assert (raised.value.status, raised.value.error, raised.value.retry_after) == (
        429,
        "overloaded",
        1,
    )


def test_a_retry_after_longer_than_max_wait_is_left_to_the_caller() -> None:
    # given: the line is full for two minutes
    recorder = Recorder(error(429, "overloaded", retry_after=120))
    client, clock = client_for(recorder, max_wait=30)
    # when
    with pytest.raises(Overloaded) as raised:
        place(client)
    # then: no sleeping through it, no wait shorter than asked
    assert len(recorder.requests) == 1
    assert clock.slept == []
    assert raised.value.retry_after == 120


def test_no_retry_starts_after_max_elapsed() -> None:
    # given: every answer a 503 with Retry-After 4, and 10 s allowed in all
    recorder = Recorder(error(503, "server_error", retry_after=4))
    client, clock = client_for(recorder, max_attempts=100, max_elapsed=10, retry_after_jitter=0)
    # when
    with pytest.raises(ServerError):
        client.list_campaigns()
    # then
    assert clock.slept == [4, 4]
    assert len(recorder.requests) == 3


def test_network_failure_on_every_attempt_is_transport_failed() -> None:
    # given
    recorder = Recorder(httpx.ConnectError("refused"))
    client, _ = client_for(recorder, max_attempts=2)
    # when
    with pytest.raises(TransportFailed) as raised:
        client.get_order("0b6c7c6e-5d0c-4f55-9a37-9d1f4a0d8a11")
    # then
    assert isinstance(raised.value.__cause__, httpx.ConnectError)
    assert len(recorder.requests) == 2


def test_a_4xx_is_not_retried() -> None:
    # given
    recorder = Recorder(error(400, "invalid", fields={"items": ["Unknown SKU 'X'."]}))
    client, clock = client_for(recorder)
    # when
    with pytest.raises(InvalidRequest):
        place(client)
    # then
    assert len(recorder.requests) == 1
    assert clock.slept == []


def test_retries_can_be_turned_off() -> None:
    # given
    recorder = Recorder(error(503, "server_error", retry_after=1))
    client, _ = client_for(recorder)
    client.retry = RetryPolicy(max_attempts=1)
    # when
    with pytest.raises(ServerError):
        client.list_campaigns()
    # then
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("Sun, 06 Dec 2026 18:00:10 GMT", 10.0),
        ("Sun, 06 Dec 2026 17:00:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_as_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    from datetime import datetime, timezone  # noqa: PLC0415

    now = datetime(2026, 12, 6, 18, 0, 0, tzinfo=timezone.utc)
    assert retry_after_seconds(header, now=now) == seconds
