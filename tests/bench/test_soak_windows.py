"""The long soak's windows (bench/soak/windows.py, bench/load/paced.py window_orders): what
the load generator recorded and the orchestrator's 1 Hz samples cut into windows, CPU per
order and growth per order from both, and each figure judged flat, first 10 minutes against
the last. The figures are shaped as a real run recorded them (a 20-minute soak at 85
orders/s: bench/runs/soak-*/), built here rather than read so the test owns its inputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from bench import results_index
from bench.load.jobs import Accepted, Result
from bench.load.paced import window_orders
from bench.soak.__main__ import PACED_CONNECTIONS, parse_args
from bench.soak.long import sustained_rate
from bench.soak.verdicts import verdicts
from bench.soak.windows import (
    FLAT_TOLERANCE,
    flat_spans,
    flat_verdicts,
    not_judged,
    sample_window,
    window_bounds,
    window_row,
)

R = dict[str, Any]
T0 = 1_800_000_000.0
RATE = 85  # orders a second
# CPU seconds each process kind spends per order (a real run's, per accepted order).
CPU_PER_ORDER = {"gunicorn": 3.1e-3, "postgres": 1.9e-3, "worker-payments": 1.1e-3}


def _samples(
    minutes: int,
    *,
    rss_growth: dict[str, float] | None = None,
    slower: Callable[[int], float] | None = None,
    more_work: dict[str, float] | None = None,
) -> list[R]:
    """1 Hz samples of a steady run: cumulative CPU in step with the orders, RSS flat unless
    `rss_growth` (MB a minute) says otherwise, the database growing 2.7 kB an order, dead
    tuples in autovacuum's saw-tooth, one autovacuum and autoanalyze of each table a minute;
    the yardstick every 5 samples. `slower(second)`: how many times slower the machine is
    then (every kind's CPU per order and the yardstick alike); `more_work`: kinds whose CPU
    per order grows by this share over the run, on a steady machine."""
    rows = []
    growth = rss_growth or {}
    cpu = dict.fromkeys(CPU_PER_ORDER, 0.0)
    for s in range(minutes * 60 + 1):
        orders = RATE * s
        dead = 2000 + 40 * (s % 60)
        speed = slower(s) if slower else 1.0
        if s:
            for kind, per_order in CPU_PER_ORDER.items():
                grown = 1 + (more_work or {}).get(kind, 0.0) * s / (minutes * 60)
                cpu[kind] += per_order * RATE * speed * grown
        extra = {"yardstick_ms": round(3.1 * speed, 3)} if s % 5 == 0 else {}
        rows.append(
            extra
            | {
                "t": T0 + s,
                "machine_steal": 0.02 * s,
                "cpu": dict(cpu) | {"orchestrator": s},
                "rss": {
                    k: int((mb + growth.get(k, 0) * s / 60) * 2**20)
                    for k, mb in {"gunicorn": 212, "loadgen": 45, "redis": 9}.items()
                },
                "db_bytes": 40 * 2**20 + orders * 2765,
                "dead_tuples": dict.fromkeys(
                    ("orders_order", "orders_payment", "orders_reservation"), dead
                ),
                "autovacuums": dict.fromkeys(
                    ("orders_order", "orders_payment", "orders_reservation"), s // 60
                ),
                "autoanalyzes": dict.fromkeys(
                    ("orders_order", "orders_payment", "orders_reservation"), s // 60
                ),
                "redis_used_memory": 3 * 2**20 + 1000 * s,
            }
        )
    return rows


def _orders(window: int, *, p99: float) -> R:
    """A window's order figures as window_orders gives them."""
    return {
        "accepted": RATE * 300,
        "http_429": 0,
        "failed": 0,
        "requests": RATE * 315,
        "paid": RATE * 280,
        "ended_otherwise": RATE * 20,
        "no_final_yet": 0,
        "to_paid_p50_s": 0.5,
        "to_paid_p99_s": p99,
        "to_paid_max_s": p99 * 3,
    }


def _rows(minutes: int, *, p99s: list[float], samples: list[R]) -> list[R]:
    return [
        window_row(
            i,
            start=a,
            end=b,
            orders=_orders(i, p99=p99s[i]),
            samples=sample_window(samples, start=a, end=b),
        )
        for i, (a, b) in enumerate(window_bounds(T0, T0 + minutes * 60, 5))
    ]


def _judged(rows: list[R]) -> dict[str, Any]:
    return {v.name.removeprefix("flat: "): v for v in flat_verdicts(rows, 5)}


def test_windows_cut_the_run_the_last_one_shorter():
    # given a run of 22 minutes

    # when
    bounds = window_bounds(T0, T0 + 22 * 60, 5)

    # then
    assert [(a - T0, b - T0) for a, b in bounds] == [
        (0, 300),
        (300, 600),
        (600, 900),
        (900, 1200),
        (1200, 1320),
    ]


def test_a_window_holds_cpu_per_order_growth_per_order_and_the_levels_at_its_end():
    # given a steady run's samples
    samples = _samples(10)

    # when
    row = window_row(
        1,
        start=T0 + 300,
        end=T0 + 600,
        orders=_orders(1, p99=1.2),
        samples=sample_window(samples, start=T0 + 300, end=T0 + 600),
    )

    # then CPU and growth are per accepted order, RSS and Redis at the window's end
    assert row["cpu_ms_per_order"]["gunicorn"] == pytest.approx(3.1)
    assert row["cpu_ms_per_order"]["postgres"] == pytest.approx(1.9)
    assert row["cpu_ms_per_order_total"] == pytest.approx(6.1)  # the orchestrator left out
    assert row["db_kb_per_order"] == pytest.approx(2765 / 1024, abs=0.001)
    assert row["rss_mb"]["gunicorn"] == 212
    assert row["redis_mb"] == pytest.approx((3 * 2**20 + 600_000) / 2**20, abs=0.01)
    assert row["autovacuums"]["orders_order"] == 5  # one a minute
    assert row["autoanalyzes"]["orders_payment"] == 5
    # the mean of the saw-tooth over the window's samples, and its top
    assert 2000 < row["dead_tuples_mean"]["orders_order"] < 2000 + 40 * 59
    assert row["dead_tuples_max"]["orders_order"] == 2000 + 40 * 59


def test_a_steady_run_is_flat_in_every_figure():
    # given 20 minutes of steady figures, accept-to-paid p99 within 10 %
    samples = _samples(20)
    rows = _rows(20, p99s=[1.20, 1.25, 1.22, 1.30], samples=samples)

    # when
    judged = _judged(rows)

    # then
    assert all(v.passed for v in judged.values()), [
        v.as_dict() for v in judged.values() if not v.passed
    ]
    assert "CPU per order: gunicorn" in judged
    assert "RSS: loadgen" not in judged  # grows by design: reported, not judged
    assert any("loadgen" in line for line in not_judged(rows))
    # the first 10 minutes (windows 0-1) against the last 10 (windows 2-3)
    assert "windows 0-1 against 2-3" in judged["accept-to-paid p99"].note


def test_growth_and_a_slower_tail_are_not_flat():
    # given gunicorn's memory growing 3 MB a minute and the p99 going from 1.2 s to 2 s
    samples = _samples(20, rss_growth={"gunicorn": 3})
    rows = _rows(20, p99s=[1.2, 1.2, 2.0, 2.0], samples=samples)

    # when
    judged = _judged(rows)

    # then
    assert judged["RSS: gunicorn"].passed is False
    assert judged["RSS: gunicorn"].measured == pytest.approx(30 / (212 + 22.5), abs=0.01)
    assert judged["accept-to-paid p99"].passed is False
    assert judged["accept-to-paid p99"].measured == pytest.approx(0.8 / 1.2)
    assert judged["CPU per order: gunicorn"].passed is True


def test_a_window_holds_the_machines_speed_and_the_cpu_stolen_from_it():
    # given a machine twice as slow from minute 5 on
    samples = _samples(10, slower=lambda s: 2.0 if s > 300 else 1.0)

    # when
    rows = _rows(10, p99s=[1.2, 1.2], samples=samples)

    # then
    assert [r["yardstick_ms"] for r in rows] == [3.1, 6.2]
    assert [r["steal_s"] for r in rows] == [6.0, 6.0]
    assert rows[1]["cpu_ms_per_order"]["gunicorn"] == pytest.approx(6.2, abs=0.01)


def test_a_machine_that_slowed_fails_as_measured_and_passes_at_its_first_speed():
    # given every process and the yardstick 20 % slower in the last 10 minutes
    samples = _samples(20, slower=lambda s: 1.2 if s > 600 else 1.0)
    rows = _rows(20, p99s=[1.2] * 4, samples=samples)

    # when
    judged = _judged(rows)

    # then: as measured, every kind grew by a fifth; at the first speed, none did
    assert judged["CPU per order: gunicorn"].passed is False
    assert judged["CPU per order: gunicorn"].measured == pytest.approx(0.2, abs=0.01)
    adjusted = judged["flat at the first windows' machine speed: CPU per order: gunicorn"]
    assert adjusted.passed is True
    assert adjusted.measured == pytest.approx(0.0, abs=0.01)
    assert "the yardstick 3.1 → 3.72 ms (+20%)" in adjusted.note
    assert judged[
        "flat at the first windows' machine speed: CPU per order: all our processes"
    ].passed


def test_more_work_per_order_on_a_steady_machine_fails_both_ways():
    # given gunicorn doing 40 % more per order by the end of the run, the machine steady
    samples = _samples(20, more_work={"gunicorn": 0.4})
    rows = _rows(20, p99s=[1.2] * 4, samples=samples)

    # when
    judged = _judged(rows)

    # then
    assert judged["CPU per order: gunicorn"].passed is False
    adjusted = judged["flat at the first windows' machine speed: CPU per order: gunicorn"]
    assert adjusted.passed is False
    assert adjusted.measured == judged["CPU per order: gunicorn"].measured
    assert judged["flat at the first windows' machine speed: CPU per order: postgres"].passed


def test_without_a_yardstick_only_the_measured_cpu_is_judged():
    # given samples of a run before the yardstick
    samples = [{k: v for k, v in s.items() if k != "yardstick_ms"} for s in _samples(20)]
    rows = _rows(20, p99s=[1.2] * 4, samples=samples)

    # when
    judged = _judged(rows)

    # then
    assert "CPU per order: gunicorn" in judged
    assert not [name for name in judged if "machine speed" in name]
    assert "yardstick_ms" not in rows[0]


def test_a_change_within_the_noise_floor_passes():
    # given one autovacuum run in the first windows and two in the last: +100 %, one run
    samples = _samples(20)
    rows = _rows(20, p99s=[1.2] * 4, samples=samples)
    for row in rows[:2]:
        row["autovacuums"]["orders_order"] = 1
    for row in rows[2:]:
        row["autovacuums"]["orders_order"] = 2

    # when
    verdict = _judged(rows)["autovacuum runs: order"]

    # then
    assert verdict.passed is True
    assert verdict.measured == 0.0
    assert "noise floor" in verdict.note


def test_short_runs_compare_fewer_windows_and_the_shorter_last_one_is_left_out():
    # given 12 minutes: two full windows and two minutes
    rows = _rows(12, p99s=[1.2, 1.2, 9.9], samples=_samples(12))

    # when
    spans = flat_spans(rows, 5)

    # then the first full window against the last full one; the short one is not judged
    assert spans is not None
    assert [r["window"] for r in spans[0]] == [0]
    assert [r["window"] for r in spans[1]] == [1]
    assert _judged(rows)["accept-to-paid p99"].passed is True


def test_under_two_full_windows_nothing_is_judged():
    rows = _rows(7, p99s=[1.2, 1.2], samples=_samples(7))

    judged = flat_verdicts(rows, 5)

    assert [v.passed for v in judged] == [None]


def test_the_soak_verdicts_carry_the_flat_ones_of_a_long_soak():
    # given a long soak's results that went well
    rows = _rows(20, p99s=[1.2] * 4, samples=_samples(20))
    res = {
        "settings": {"window_minutes": 5},
        "windows": rows,
        "minutes": [{"minute": m, "paid": 4760} for m in range(20)],
        "expired": 0,
        "waits": {
            "orders": 1000,
            "no_final": 0,
            "error_p90": 0.0,
            "promised_p50_s": 1.0,
            "promised_p90_s": 1.0,
            "actual_p50_s": 0.5,
            "actual_p90_s": 0.7,
            "long_waits": 0,
            "long_wait_error_p90": None,
            "within_promise": 0.95,
        },
        "invariants": {"violations": {"stock": 0}},
        "drain": {"drained": True, "seconds": 3.0, "orders_at_start": 5, "callbacks_at_start": 2},
    }

    # when
    got = verdicts(res)

    # then
    flat = [v for v in got if v.name.startswith("flat: ")]
    assert len(flat) > 10
    assert all(v.passed for v in got)
    assert all(v.target == FLAT_TOLERANCE for v in flat)


def _result(after: float, status: int, *, accepted: bool, error: str = "") -> Result:
    at = T0 + after
    return Result("soak", 0, "orders", at, at, at, status, error, False, accepted)


def test_window_orders_counts_answers_by_arrival_and_times_accept_to_paid():
    # given answers in and around a window [T0 + 60, T0 + 120), and four accepted orders:
    # paid after 0.5 s and 2 s, declined, and one still without a final callback
    results = [
        _result(59.9, 202, accepted=True),  # before the window
        _result(60, 202, accepted=True),
        _result(61, 429, accepted=False, error="overloaded"),
        _result(62, 503, accepted=False, error="http_503"),
        _result(63, 0, accepted=False, error="timeout"),
        _result(64, 0, accepted=False, error="no_coupon"),  # not a failure: the pool is spent
        _result(120, 202, accepted=True),  # after it
    ]
    accepted = [
        ("a", Accepted("soak", T0 + 60, 1, 1)),
        ("b", Accepted("soak", T0 + 70, 1, 1)),
        ("c", Accepted("soak", T0 + 80, 1, 1)),
        ("d", Accepted("soak", T0 + 90, 1, 1)),
        ("e", Accepted("soak", T0 + 130, 1, 1)),  # after the window
        ("f", Accepted("burst", T0 + 65, 1, 1)),  # another phase
    ]
    callbacks = {
        "a": {"reserved": (T0 + 60.2, "", ""), "paid": (T0 + 60.5, "", "")},
        "b": {"paid": (T0 + 72, "", "")},
        "c": {"rejected": (T0 + 80.1, "", "")},
        "d": {"reserved": (T0 + 90.3, "", "")},
        "e": {"paid": (T0 + 190, "", "")},
        "f": {"paid": (T0 + 200, "", "")},
    }

    # when
    got = window_orders(
        results=reversed(results),
        accepted=reversed(accepted),
        callbacks=callbacks,
        phase="soak",
        start=T0 + 60,
        end=T0 + 120,
    )

    # then
    assert got["requests"] == 5
    assert got["accepted"] == 1
    assert got["http_429"] == 1
    assert got["failed"] == 2
    assert (got["paid"], got["ended_otherwise"], got["no_final_yet"]) == (2, 1, 1)
    assert got["to_paid_p50_s"] == pytest.approx(0.5)
    assert got["to_paid_p99_s"] == pytest.approx(2.0)
    assert got["to_paid_max_s"] == pytest.approx(2.0)


def test_the_long_soak_is_a_mode_of_its_own():
    timed = parse_args([])
    long = parse_args(["--orders", "2000000", "--rate", "160"])

    assert (timed.minutes, timed.connections, timed.orders) == (20, 4, None)
    assert (long.orders, long.rate, long.minutes) == (2_000_000, 160.0, None)
    assert (long.connections, long.window_minutes, long.rate_share) == (PACED_CONNECTIONS, 5, 0.8)
    with pytest.raises(SystemExit):
        parse_args(["--orders", "20000", "--minutes", "5"])


def test_the_sustained_rate_is_read_from_the_latest_full_run(tmp_path):
    # given two kept full runs: the later one's main run not sustained, two probes that were
    def run(main: tuple[float, bool], probes: list[tuple[float, float, bool]]) -> str:
        def entry(rate: float, paid: float, held: bool) -> R:
            return {"rate": rate, "paid_per_s": paid, "sustained": held}

        return json.dumps(
            {"e2e": {"main": entry(300, *main), "probes": [entry(*p) for p in probes]}}
        )

    (tmp_path / "full-20261201T000000Z.json").write_text(run((250.0, True), []))
    (tmp_path / "full-20261206T000000Z.json").write_text(
        run((150.0, False), [(210, 194.0, True), (260, 233.0, True), (320, 215.0, False)])
    )

    # when
    paid, source = sustained_rate(tmp_path)

    # then the best sustained probe of the latest run
    assert paid == 233.0
    assert source == "full-20261206T000000Z.json (best sustained probe, 260/s offered)"


def test_a_long_soaks_index_line_gives_accept_to_paid_not_the_late_slots_latency():
    # given a long soak's results: its answers' latency counts from slots that fell behind
    rows = _rows(20, p99s=[1.2, 1.3, 1.25, 2.5], samples=_samples(20))
    res = {
        "mode": "soak",
        "settings": {"orders": 2_000_000, "rate": 158.5, "minutes": 210, "connections": 16},
        "load": {"accepted_per_s": 158.2, "latency_ms": {"p99": 31_000.0}},
        "windows": rows,
        "verdicts": [{"name": "flat", "passed": True}, {"name": "drained", "passed": False}],
    }

    # when
    line = results_index.line(res, "soak-x")

    # then
    assert "2,000,000 orders at 158.5/s offered, 210 min, 16 connections" in line
    assert "accept-to-paid p99 1.20 s in the first window, 2.50 s in the last" in line
    assert "31000" not in line
