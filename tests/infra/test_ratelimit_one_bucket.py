"""One token bucket: the intake's admission script (orders.waiting_line) and
infra.ratelimit.take are written with the same Lua functions (infra.ratelimit.BUCKET_LUA) and
keep a bucket in the same key and form, so each sees what the other took."""

from __future__ import annotations

import pytest

from infra import ratelimit
from infra.ratelimit import Limit
from orders import waiting_line

SLOW = 1 / 3600  # a token an hour: nothing refills during the test


def _admit(bucket: str, limit: tuple[float | None, int]) -> waiting_line.Admission:
    waiting_line.queue_rebuild(None, last_ticket=0, live=0)
    return waiting_line.admit(
        None,
        client_bucket=bucket,
        client_limit=limit,
        customer_bucket="",
        customer_limit=(None, 1),
        ceiling=0,
        longest_wait=0,
        nudge_kind="reserve",
    )


def test_admission_and_take_draw_from_one_bucket() -> None:
    # given: a bucket of three
    limit = Limit(per_second=SLOW, burst=3)
    # when: admission takes one, take asks for all three, admission asks again
    first = _admit("one-bucket", (SLOW, 3))
    taken = ratelimit.take("one-bucket", limit, want=3)
    last = _admit("one-bucket", (SLOW, 3))
    # then: take found the two admission left, and admission then found none
    assert first.outcome == waiting_line.ADMIT_OK
    assert taken.granted == 2
    assert last.outcome == waiting_line.ADMIT_REFUSED
    assert last.retry_after == pytest.approx(taken.retry_after, rel=0.01)


def test_a_stopped_bucket_asks_for_the_same_wait_on_both_paths() -> None:
    # given / when
    admitted = _admit("stopped", (0.0, 1))
    taken = ratelimit.take("stopped", Limit(per_second=0.0))
    # then
    assert admitted.outcome == waiting_line.ADMIT_REFUSED
    assert admitted.retry_after == taken.retry_after == ratelimit.STOPPED_WAIT
