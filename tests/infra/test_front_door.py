"""The front door's admission rule (infra.server.FrontDoor), on a clock the test moves: the
budget a request may wait depends on whether a queue is standing and on how much of the last
second the door already refused. The server itself is tested in tests/infra/test_server.py."""

from __future__ import annotations

import pytest

from infra.server import FrontDoor

MS = 0.001


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def door(clock: Clock) -> FrontDoor:
    return FrontDoor(
        timeout_s=200 * MS,
        busy_timeout_s=100 * MS,
        shedding_timeout_s=50 * MS,
        heavy_share=0.25,
        interval_s=100 * MS,
        max_waiting=32,
        retry_after_s=1,
        clock=clock,
    )


def wait_for_thread(door: FrontDoor, clock: Clock, waited_s: float) -> bool:
    """A request queued now, picked up by a thread `waited_s` later: admitted?"""
    queued_at = clock()
    door.arrived()
    clock.advance(waited_s)
    return door.started(queued_at)


def stand_queue(door: FrontDoor, clock: Clock) -> None:
    """One request waits in the queue for longer than the interval: the queue is standing."""
    door.arrived()
    clock.advance(150 * MS)


def one_second(door: FrontDoor, clock: Clock, *, requests: int, refused: int) -> None:
    """A second in which `requests` were picked up and `refused` of them were answered 429,
    then the next second begins."""
    for i in range(requests):
        door.arrived()
        door.started(clock())
        if i < refused:
            door.refused()
    clock.advance(1.0)


def test_a_brief_burst_is_admitted_even_while_shedding_heavily(
    door: FrontDoor, clock: Clock
) -> None:
    # given: a second in which half the requests were refused, and the queue empty since
    one_second(door, clock, requests=10, refused=5)
    # then: a request that found the queue empty may wait up to the interval (no queue stands)
    assert wait_for_thread(door, clock, 90 * MS)
    # but one that waited past the interval is in a standing queue, and heavily shed
    assert not wait_for_thread(door, clock, 110 * MS)


def test_a_standing_queue_gets_the_busy_budget_while_few_are_refused(
    door: FrontDoor, clock: Clock
) -> None:
    # given: a second in which 1 of 10 requests was refused, and a standing queue
    door.arrived()  # keeps the queue from being empty in between
    one_second(door, clock, requests=10, refused=1)
    stand_queue(door, clock)
    # then: a wait of 80 ms is admitted, 120 ms is not
    assert wait_for_thread(door, clock, 80 * MS)
    assert not wait_for_thread(door, clock, 120 * MS)


def test_a_standing_queue_gets_the_shedding_budget_once_many_are_refused(
    door: FrontDoor, clock: Clock
) -> None:
    # given: a second in which 4 of 10 requests were refused, and a standing queue
    door.arrived()
    one_second(door, clock, requests=10, refused=4)
    stand_queue(door, clock)
    # then: 80 ms, admitted with light shedding, is now too long; 40 ms is not
    assert not wait_for_thread(door, clock, 80 * MS)
    assert wait_for_thread(door, clock, 40 * MS)


def test_refusals_in_the_main_thread_count_towards_the_share(door: FrontDoor, clock: Clock) -> None:
    # given: 10 requests picked up and served, and 5 more refused by the main thread unseen
    door.arrived()
    for _ in range(10):
        door.arrived()
        door.started(clock())
    for _ in range(5):
        door.refused(unseen=True)
    clock.advance(1.0)
    stand_queue(door, clock)
    # then: a third of the second's 15 requests was refused: the shedding budget applies
    assert not wait_for_thread(door, clock, 80 * MS)


def test_heavy_shedding_ends_with_a_light_second_or_a_quiet_gap(
    door: FrontDoor, clock: Clock
) -> None:
    # given: a heavy second, then a light one
    door.arrived()
    one_second(door, clock, requests=10, refused=5)
    one_second(door, clock, requests=10, refused=0)
    stand_queue(door, clock)
    # then: the busy budget is back
    assert wait_for_thread(door, clock, 80 * MS)
    # and: a heavy second followed by two quiet seconds is not heavy either
    one_second(door, clock, requests=10, refused=5)
    clock.advance(2.0)
    stand_queue(door, clock)
    assert wait_for_thread(door, clock, 80 * MS)


def test_the_share_is_judged_only_after_a_whole_second(door: FrontDoor, clock: Clock) -> None:
    # given: within the first second, every request so far refused
    door.arrived()
    for _ in range(5):
        door.arrived()
        door.started(clock())
        door.refused()
    clock.advance(0.5)
    stand_queue(door, clock)  # 0.65 s into the second
    # then: not judged yet, the busy budget applies
    assert wait_for_thread(door, clock, 80 * MS)
