"""The global token bucket, held under real concurrency: separate processes drawing from one
bucket in Redis never take more than rate * time + burst, and do use what it allows."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from infra import fast, ratelimit
from infra.ratelimit import Limit

RATE, BURST, SECONDS, PROCESSES = 50.0, 10, 3.0, 4


def _draw(bucket: str, results: multiprocessing.Queue) -> None:
    """One process drawing single tokens as fast as it can for SECONDS."""
    fast.client.cache_clear()  # a connection of its own, not the parent's
    ratelimit._script.cache_clear()
    taken = 0
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        grant = ratelimit.take(bucket, Limit(per_second=RATE, burst=BURST))
        taken += grant.granted
        if not grant.granted:  # back off as a client would: tokens per second is the point
            time.sleep(min(grant.retry_after, 0.01))
    results.put(taken)


def test_processes_sharing_a_bucket_take_at_most_rate_times_time_plus_burst() -> None:
    # given
    context = multiprocessing.get_context("fork")
    results: multiprocessing.Queue = context.Queue()
    workers = [context.Process(target=_draw, args=("race", results)) for _ in range(PROCESSES)]
    # when
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    elapsed = time.monotonic() - started
    taken = sum(results.get(timeout=5) for _ in workers)
    # then: never more than the bucket allows, and the limit is used, not starved
    assert taken <= RATE * elapsed + BURST
    assert taken >= 0.8 * RATE * SECONDS


def test_a_request_for_many_gets_what_is_there_and_how_long_to_wait() -> None:
    # given
    limit = Limit(per_second=10.0, burst=5)
    # when
    first = ratelimit.take("many", limit, want=8)
    second = ratelimit.take("many", limit, want=8)
    # then
    assert first.granted == 5
    assert second.granted == 0
    assert 0 < second.retry_after <= 0.1 + 1e-6


@pytest.mark.parametrize(
    ("limit", "granted"), [(Limit(per_second=None), 1000), (Limit(per_second=0.0), 0)]
)
def test_unlimited_grants_all_and_zero_stops(limit: Limit, granted: int) -> None:
    # given / when
    grant = ratelimit.take("edge", limit, want=1000)
    # then
    assert grant.granted == granted
