"""The benchmark judges its own runs: the end-to-end targets of the story's average rate, and a
backlog phase that built no line is reported as not exercised, never left out."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench.plan import FULL
from bench.report.verdicts import verdicts

R = dict[str, Any]


def _run(name: str, *, sustained: bool, paid_per_s: float, cpu: dict[str, float]) -> R:
    return {
        "name": name,
        "rate": paid_per_s * 1.1,
        "seconds": 300 if name == "e2e" else 40,
        "paid_per_s": paid_per_s,
        "sustained": sustained,
        "paid_in_run": int(paid_per_s * 300),
        "cpu_ms_per_paid_order": cpu,
        "summary": {"steps": [{"timeouts": 0, "not_sent": 0, "http_5xx": 0}]},
        "accepted_per_s": paid_per_s,
        "backlog_slope_per_s": 0.0,
        "backlog_allowed_slope_per_s": 1.0,
        "callback_backlog_slope_per_s": 0.0,
    }


CHEAP = {"gunicorn": 2.0, "postgres": 1.5, "worker-payments": 0.9, "loadgen": 0.8, "sandbox": 0.3}
DEAR = {"gunicorn": 4.0, "postgres": 2.0, "worker-payments": 1.0, "loadgen": 1.2, "sandbox": 0.5}


def _result(main: R, probes: list[R], orders: R) -> R:
    return {
        "plan": {"targets": asdict(FULL.targets)},
        "e2e": {"main": main, "probes": probes},
        "orders": orders,
    }


def _by_name(res: R) -> dict[str, Any]:
    return {v.name: v for v in verdicts(res)}


def test_the_sustained_run_is_judged_against_the_average_rate_and_its_cost():
    # given a 5-minute run that held 320 paid/s at 4.4 ms of our CPU per paid order
    main = _run("e2e", sustained=True, paid_per_s=320, cpu=CHEAP)
    res = _result(main, [], {"e2e": {"accept_to_paid_s": {"p99": 1.4}}})

    # when
    got = _by_name(res)

    # then the harness's own processes are kept apart from ours
    assert got["end to end: paid orders/s sustained 300 s (the story's average)"].passed
    ours = got["end to end: CPU ms per paid order, our processes"]
    assert ours.measured == 2.0 + 1.5 + 0.9
    assert ours.passed
    harness = got["end to end: CPU ms per paid order, load generator + sandbox"]
    assert harness.measured == 0.8 + 0.3
    assert harness.passed
    assert got["end to end: accept-to-paid p99"].passed
    # and the long-range goal is still judged on its own
    assert not got["end to end: paid orders/s sustained 300 s, backlog flat"].passed


def test_a_run_that_did_not_hold_is_costed_at_its_best_sustained_probe():
    # given a main run that fell behind and two probes, the better one dearer per order
    main = _run("e2e", sustained=False, paid_per_s=350, cpu=CHEAP)
    slow = _run("e2e-probe-1", sustained=True, paid_per_s=200, cpu=CHEAP)
    best = _run("e2e-probe-2", sustained=True, paid_per_s=300, cpu=DEAR)
    orders = {"e2e-probe-2": {"accept_to_paid_s": {"p99": 2.5}}}

    # when
    got = _by_name(_result(main, [slow, best], orders))

    # then the rate fails (not sustained) and the cost is the best probe's
    assert got["end to end: paid orders/s sustained 300 s (the story's average)"].measured == 0.0
    ours = got["end to end: CPU ms per paid order, our processes"]
    assert ours.measured == 7.0
    assert not ours.passed
    assert "e2e-probe-2" in ours.note
    assert not got["end to end: CPU ms per paid order, load generator + sandbox"].passed
    assert not got["end to end: accept-to-paid p99"].passed


def _with_backlog(long_waits: int, error: float | None) -> R:
    main = _run("e2e", sustained=True, paid_per_s=320, cpu=CHEAP)
    res = _result(
        main,
        [],
        {
            "e2e": {"accept_to_paid_s": {"p99": 1.0}},
            "backlog": {
                "long_waits": long_waits,
                "long_wait_error_p90": error,
                "actual_wait_s": {"max": 1.29},
            },
        },
    )
    res["backlog"] = {
        "summary": {"steps": [{"rate": 555.0, "accepted_per_s": 321.0, "http_429": 13010}]}
    }
    return res


BACKLOG = "backlog: p90 |estimated - actual| / actual, waits >= 5 s"


def test_a_backlog_that_never_built_is_reported_as_not_exercised():
    # given a backlog phase in which the front door refused the excess, so nobody waited 5 s
    res = _with_backlog(long_waits=0, error=None)

    # when
    verdict = _by_name(res)[BACKLOG]

    # then the target is shown, unjudged, with why
    assert verdict.passed is None
    assert verdict.gap == "not measured"
    assert "not exercised" in verdict.note
    assert "555/s offered" in verdict.note
    assert "13010 with 429" in verdict.note
    assert "1.3 s" in verdict.note


def test_a_backlog_that_built_is_judged_on_its_long_waits():
    # given orders that waited 5 s or more, their estimates off by 40 % at p90
    res = _with_backlog(long_waits=900, error=0.4)

    # when
    verdict = _by_name(res)[BACKLOG]

    # then
    assert verdict.passed is False
    assert "900 orders waited" in verdict.note
    assert _by_name(_with_backlog(long_waits=900, error=0.1))[BACKLOG].passed
