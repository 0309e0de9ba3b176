"""The soak's per-minute table: answers and final callbacks counted in the minute they arrived,
waits in the minute the order was accepted, orders without a final counted apart, and the
samples' figures taken at each minute's end."""

from __future__ import annotations

from typing import Any

import pytest

from bench.load.jobs import Accepted, Result
from bench.load.minutes import first_final, order_minutes, wait_error
from bench.soak.minutes import sample_minutes

T0 = 1_800_000_000.0


def _answer(after: float, status: int, *, accepted: bool, error: str = "") -> Result:
    at = T0 + after
    return Result("soak", 0, "orders", at, at, at, status, error, False, accepted)


def _figures(
    results: list[Result],
    orders: list[tuple[float, float | None, str | None, float | None]],
    minutes: int = 2,
) -> dict[str, Any]:
    """`orders`: (seconds after T0 accepted, promised wait, final status or None, seconds
    from acceptance to that final)."""
    accepted, callbacks = {}, {}
    for n, (after, promised, final, took) in enumerate(orders):
        accepted[f"o{n}"] = Accepted("soak", T0 + after, promised, 1)
        seen = {"reserved": (T0 + after + 0.1, "", "")}
        if final is not None and took is not None:
            seen[final] = (T0 + after + took, "", "")
        callbacks[f"o{n}"] = seen
    return order_minutes(
        results=results,
        accepted=accepted,
        callbacks=callbacks,
        phase="soak",
        start=T0,
        minutes=minutes,
    )


def test_answers_are_counted_in_the_minute_they_arrived():
    # given two minutes of answers: 202s, a 429, a 5xx, a time-out and a spent pool
    results = [
        _answer(1, 202, accepted=True),
        _answer(59.9, 202, accepted=True),
        _answer(60, 429, accepted=False, error="overloaded"),
        _answer(61, 503, accepted=False, error="http_503"),
        _answer(62, 0, accepted=False, error="timeout"),
        _answer(63, 0, accepted=False, error="no_coupon"),
        _answer(125, 202, accepted=True),  # after the load: no minute of its own
    ]

    # when
    rows = _figures(results, [])["minutes"]

    # then
    assert [r["accepted"] for r in rows] == [2, 0]
    assert [r["http_429"] for r in rows] == [0, 1]
    assert [r["failed"] for r in rows] == [0, 2]  # the spent pool is no failure of the server


def test_finals_count_where_they_arrived_and_after_the_load_apart():
    orders = [
        (10, 1.0, "paid", 2.0),  # final at 12 s: minute 0
        (50, 1.0, "payment_failed", 15.0),  # at 65 s: minute 1
        (70, 1.0, "expired", 20.0),  # at 90 s: minute 1
        (110, 1.0, "paid", 30.0),  # at 140 s: after the 2-minute load, in the drain
    ]

    got = _figures([], orders)

    assert [r["paid"] for r in got["minutes"]] == [1, 0]
    assert [r["payment_failed"] for r in got["minutes"]] == [0, 1]
    assert [r["expired"] for r in got["minutes"]] == [0, 1]
    assert got["after_load"]["paid"] == 1


def test_the_first_terminal_callback_ends_the_wait():
    # given an order reserved, whose payment failed at 3 s, cancelled afterwards
    seen = {"reserved": (0.1, "", ""), "cancelled": (9.0, "", ""), "payment_failed": (3.0, "", "")}
    assert first_final(seen) == ("payment_failed", 3.0)
    assert first_final({"reserved": (0.1, "", "")}) is None


def test_waits_are_binned_by_acceptance_and_orders_without_a_final_are_counted():
    orders = [
        (5, 1.0, "paid", 0.5),  # minute 0: short wait, judged against 1 s
        (55, 2.0, "paid", 70.0),  # minute 0, although its final came in minute 2
        (65, 10.0, "paid", 8.0),  # minute 1
        (70, 1.0, None, None),  # minute 1: never final
    ]

    got = _figures([], orders)

    first, second = (r["waits"] for r in got["minutes"])
    assert (first["orders"], first["no_final"]) == (2, 0)
    assert (second["orders"], second["no_final"]) == (2, 1)
    assert second["actual_p90_s"] == 8.0
    assert second["error_p90"] == 0.125  # promised 10 says more than 9: 1 s early, over 8 s
    assert second["within_promise"] == 1.0  # of the one with a final
    assert got["waits"]["no_final"] == 1
    assert got["waits"]["within_promise"] == pytest.approx(2 / 3)  # 70 s promised 2 s is not
    assert got["waits"]["long_waits"] == 2  # 70 s and 8 s


def test_a_promise_of_whole_seconds_is_kept_within_its_second_and_judged_against_one():
    # promised 1 s (the estimate rounded up): anything up to 1 s keeps it
    assert wait_error(promised=1.0, actual=0.25) == 0.0
    assert wait_error(promised=1.0, actual=1.5) == 0.5 / 1.5
    # promised 12 s says "more than 11": 10 s is 1 s early, 13 s is 1 s late
    assert wait_error(promised=12.0, actual=11.5) == 0.0
    assert wait_error(promised=12.0, actual=10.0) == 0.1
    assert wait_error(promised=12.0, actual=13.0) == 1 / 13
    # nothing promised (0): any wait is late, judged against at least a second
    assert wait_error(promised=0.0, actual=0.5) == 0.5


def _sample(after: float, **extra: Any) -> dict[str, Any]:
    return {
        "t": T0 + after,
        "cpu": {"gunicorn": after * 0.5},
        "machine_busy": after * 1.0,
        "rss": {"gunicorn": 200 * 2**20},
        **extra,
    }


def test_samples_give_each_minute_the_last_figures_by_its_end():
    # given samples before the load, in minute 0 and at the end of minute 1
    stats = {"db_bytes": 100 * 2**20, "dead_tuples": {"orders_order": 5}}
    samples = [
        _sample(-5, received=0, autovacuums={"orders_order": 7}),
        _sample(30, received=40, autovacuums={"orders_order": 7}, **stats),
        _sample(59, received=10, reserved=3, autovacuums={"orders_order": 8}, **stats),
        _sample(119, received=20, autovacuums={"orders_order": 10}, **stats),
    ]

    # when
    rows = sample_minutes(samples, start=T0, minutes=3)

    # then minute 0 shows its last sample, autovacuum runs are counted per minute
    assert (rows[0]["received"], rows[0]["reserved"]) == (10, 3)
    assert [r["autovacuums"]["orders_order"] for r in rows[:2]] == [1, 2]
    assert rows[0]["db_mb"] == 100
    assert rows[0]["dead_tuples"] == {
        "orders_order": 5,
        "orders_payment": None,
        "orders_reservation": None,
    }
    assert rows[0]["rss_mb"] == {"gunicorn": 200}
    # gunicorn used half a core, the machine one: the other half was outside the benchmark
    assert rows[1]["cpu_pct"] == {"gunicorn": 50, "others": 50}
    # and a minute with no new sample is left empty rather than repeated
    assert rows[2] == {}
