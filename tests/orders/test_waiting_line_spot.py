"""The place in line a poll reports (waiting_line.spot): the line's `out` and `aside` read on
every poll, its drain rate read once a second in a process (the window's counters cannot move
within the second), and None when Redis cannot tell, whatever the process keeps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from pytest_django.fixtures import Settings

from infra import fast
from orders import selectors, waiting_line
from shop.models import ApiClient
from tests import stack
from tests.factories.orders import place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db

NOW = 1_800_000_000


@contextmanager
def at(when: float) -> Iterator[None]:
    with mock.patch("orders.waiting_line.time.time", return_value=when):
        yield


def drained(campaign_id: int | None, per_second: int, *, seconds: int) -> None:
    """The line made `per_second` orders final in each of the `seconds` before NOW."""
    for s in range(seconds):
        with at(NOW - seconds + s):
            waiting_line.tickets_done(campaign_id, per_second)


def test_a_poll_reads_the_line_every_time_and_the_drain_once_a_second() -> None:
    # given: a line that drained 100 orders a second over the last 10 s, none of them ahead of
    # ticket 601 (the 1,000 drained were other orders)
    drained(None, 100, seconds=10)
    fast.client().set("cop:q:none:out", 0)
    with at(NOW):
        first = waiting_line.spot(None, 601)
    # when: later in the same second, 300 orders ahead leave the line and the window's
    # counters double (only a clock behind ours could still count into them)
    drained(None, 100, seconds=10)
    fast.client().set("cop:q:none:out", 300)
    with at(NOW + 0.9):
        same_second = waiting_line.spot(None, 601)
        other_line = waiting_line.spot(7, 601)
    with at(NOW + 1):
        next_second = waiting_line.spot(None, 601)
    # then: 601st at 100/s is 7 s; the place moves at once (300 ahead gone: 301st), but the
    # rate is the one read at the second's first poll (301 at 100/s: 4 s, not 2)
    assert first == waiting_line.QueueSpot(position=601, estimated_wait_seconds=7)
    assert same_second == waiting_line.QueueSpot(position=301, estimated_wait_seconds=4)
    # a line never drained in this process's second gets its own rate: the assumed one
    assert other_line == waiting_line.QueueSpot(position=601, estimated_wait_seconds=4)
    # the next second reads the window again: 2,000 over 11 s is 182/s, so 301st is 2 s
    assert next_second == waiting_line.QueueSpot(position=301, estimated_wait_seconds=2)


def test_a_poll_redis_cannot_answer_falls_back_to_the_database_though_the_rate_is_kept(
    chatbot: ApiClient, settings: Settings
) -> None:
    # given: three orders in line, the last one polled (its line's rate kept for this second)
    settings.QUEUE_ASSUMED_DRAIN_RATE = 1.0
    tea = ProductFactory(stock=100)
    orders = [place(chatbot, f"c-{i}", [(tea, 1)]) for i in range(3)]
    drained(None, 100, seconds=10)
    fast.client().set("cop:q:none:out", 0)
    with at(NOW):
        polled = selectors.order_queue_spot(orders[-1])
    assert polled == waiting_line.QueueSpot(position=3, estimated_wait_seconds=1)
    # when: Redis stops answering within the same second
    settings.REDIS_URL = f"redis://127.0.0.1:{stack.free_port()}/0"
    fast.client.cache_clear()
    try:
        with at(NOW + 0.5):
            unknown = waiting_line.spot(None, orders[-1].queue_ticket)
            counted = selectors.order_queue_spot(orders[-1])
    finally:
        fast.client.cache_clear()
    # then: spot cannot tell, and the place is counted in the database, its wait at the
    # assumed rate (1/s: 3 s), as before the rate was kept, not at the rate this process holds
    assert unknown is None
    assert counted == waiting_line.QueueSpot(position=3, estimated_wait_seconds=3)
