"""The soak's verdicts, each made to pass and to fail: paid/s flat after the warm-up minute,
nothing expired, the promised wait within 25 % at p90, every accepted order final, every
invariant held, and the backlog drained within its bound."""

from __future__ import annotations

from typing import Any

import pytest

from bench.report.verdicts import Verdict
from bench.soak.verdicts import flat_windows, verdicts

R = dict[str, Any]
FLAT = "paid/s flat: last minutes vs first (minute 0 is warm-up, skipped)"
WAIT = "wait to final: p90 of how far the wait fell outside the promised second, over the wait"


def _result(paid_per_minute: list[int], **changes: Any) -> R:
    """A soak that went well, with `changes` on top."""
    res = {
        "minutes": [{"minute": m, "paid": n} for m, n in enumerate(paid_per_minute)],
        "expired": 0,
        "waits": {
            "orders": 1000,
            "no_final": 0,
            "error_p90": 0.1,
            "promised_p50_s": 1.0,
            "promised_p90_s": 2.0,
            "actual_p50_s": 0.9,
            "actual_p90_s": 1.8,
            "long_waits": 0,
            "long_wait_error_p90": None,
            "within_promise": 0.8,
        },
        "invariants": {"violations": dict.fromkeys(("stock", "coupons", "budget"), 0)},
        "drain": {
            "drained": True,
            "seconds": 12.0,
            "cap": 600.0,
            "orders_at_start": 300,
            "callbacks_at_start": 900,
            "orders_left": 0,
            "callbacks_left": 0,
        },
    }
    return {**res, **changes}


def _by_name(res: R) -> dict[str, Verdict]:
    return {v.name: v for v in verdicts(res)}


def test_a_soak_that_went_well_passes_every_verdict():
    # given 20 minutes at about 300 paid/s, a slow first minute, 4 % apart at the ends
    paid = [9000] + [18000] * 5 + [18200] * 9 + [18700] * 5

    got = verdicts(_result(paid))

    assert all(v.passed for v in got), [v.as_dict() for v in got if not v.passed]
    flat = _by_name(_result(paid))[FLAT]
    assert flat.note == "minutes 1-5: 300 paid/s; minutes 15-19: 312 paid/s"
    assert "80 % final within the promise" in _by_name(_result(paid))[WAIT].note


def test_a_paid_rate_that_sags_is_not_flat():
    paid = [9000] + [18000] * 14 + [15000] * 5  # the last 5 minutes 17 % slower
    verdict = _by_name(_result(paid))[FLAT]
    assert not verdict.passed
    assert verdict.measured == pytest.approx(3000 / 18000)


def test_the_flat_rate_names_the_cpu_other_work_took_meanwhile():
    # given a third minute in which another process on the machine took most of a core
    res = _result([100, 12000, 9000])
    for row, others in zip(res["minutes"], (0, 10, 80), strict=True):
        row["cpu_pct"] = {"gunicorn": 50, "others": others}

    verdict = _by_name(res)[FLAT]

    assert not verdict.passed
    assert verdict.note == (
        "minute 1: 200 paid/s (others used 10 % of a core); "
        "minute 2: 150 paid/s (others used 80 % of a core)"
    )


@pytest.mark.parametrize(
    ("minutes", "windows"),
    [
        (2, None),  # after the warm-up one minute is left: nothing to compare
        (3, (range(1, 2), range(2, 3))),
        (6, (range(1, 3), range(4, 6))),
        (20, (range(1, 6), range(15, 20))),
    ],
)
def test_the_compared_minutes_never_overlap(minutes: int, windows: tuple | None):
    assert flat_windows(minutes) == windows


def test_a_short_soak_leaves_the_flat_rate_unjudged():
    verdict = _by_name(_result([100, 200]))[FLAT]
    assert verdict.passed is None
    assert verdict.note == "needs 3 minutes or more"


def test_one_expired_order_fails():
    assert not _by_name(_result([1, 1, 1], expired=1))["orders expired"].passed


def test_waits_promised_wrong_fail_at_p90():
    res = _result([1, 1, 1])
    res["waits"] = {**res["waits"], "error_p90": 0.3}
    assert not _by_name(res)[WAIT].passed
    res["waits"]["error_p90"] = 0.24
    assert _by_name(res)[WAIT].passed


def test_an_order_without_a_final_callback_fails():
    res = _result([1, 1, 1])
    res["waits"] = {**res["waits"], "no_final": 2}
    assert not _by_name(res)["accepted orders without a final callback"].passed


def test_a_broken_invariant_fails_and_is_named():
    res = _result([1, 1, 1], invariants={"violations": {"stock": 0, "charges": 2}})
    verdict = _by_name(res)["invariant violations (stock, coupons, budget, charges, terminal)"]
    assert not verdict.passed
    assert verdict.note == "charges 2"


@pytest.mark.parametrize(
    ("drained", "seconds", "passed"),
    [(True, 12.0, True), (True, 75.0, False), (False, 600.0, False)],
)
def test_the_drain_is_held_to_its_bound(drained: bool, seconds: float, passed: bool):
    res = _result([1, 1, 1])
    res["drain"] = {**res["drain"], "drained": drained, "seconds": seconds, "orders_left": 5}
    verdict = _by_name(res)["backlog drained after the clients stopped"]
    assert verdict.passed is passed
    assert verdict.note.startswith("drained" if drained else "NOT drained within the 600 s")
