"""The workers' drain loop: group commit after a small batch, none after a full one."""

from __future__ import annotations

from unittest import mock

from orders.services import nudges


def test_a_small_batch_is_followed_by_a_wait_and_a_full_one_is_not() -> None:
    # given: batches of 1 (small), 3 (full), then nothing
    batches = iter([1, 3, 0, 0])
    renudged = []
    # when
    with mock.patch.object(nudges.time, "sleep") as sleep:
        handled = nudges.drain(
            "test",
            "line",
            lambda: next(batches),
            renudge=lambda: renudged.append(True),
            linger=0.05,
            fill=3,
        )
    # then: one wait, after the small batch; the line ran dry, so no hand-over message
    assert handled == 4
    assert sleep.call_args_list == [mock.call(0.05)]
    assert renudged == []


def test_without_a_linger_the_loop_never_waits() -> None:
    batches = iter([1, 1, 0, 0])
    with mock.patch.object(nudges.time, "sleep") as sleep:
        handled = nudges.drain("test", "line", lambda: next(batches), renudge=lambda: None)
    assert handled == 2
    sleep.assert_not_called()
