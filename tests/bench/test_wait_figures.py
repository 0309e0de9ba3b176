"""The backlog phase's waits, as the load generator reports them: promised against actual by
when the orders were accepted, the drain rates the promises assumed and met, and the orders
that never left the line (not silently dropped from the count)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench.load.figures import Figures
from bench.load.jobs import Accepted

T0 = 1_800_000_000.0
CREATED = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _figures(
    orders: list[tuple[float, int, float, float | None]], left_as: str = "reserved"
) -> Figures:
    """(seconds after T0 accepted, position, promised wait, actual wait or None: never left);
    `left_as`: the status of the callback that marks leaving the line."""
    figures = Figures()
    figures.accepted, figures.callbacks = {}, {}
    for n, (after, position, promised, waited) in enumerate(orders):
        oid = f"o{n}"
        figures.accepted[oid] = Accepted("backlog", T0 + after, promised, position)
        if waited is not None:
            created = CREATED + timedelta(seconds=after)
            left = (created + timedelta(seconds=waited)).isoformat()
            figures.callbacks[oid] = {left_as: (T0 + after + waited, left, created.isoformat())}
    return figures


def test_waits_are_binned_by_acceptance_and_the_lagging_bin_stands_out():
    # given a line draining 100/s: early orders promised right, later ones promised double
    early = [(t / 10, 1000, 10.0, 10.0) for t in range(40)]  # accepted 0-3.9 s
    late = [(5 + t / 10, 1000, 20.0, 10.0) for t in range(40)]  # accepted 5-8.9 s
    report = _figures(early + late).orders_report(["backlog"])["backlog"]

    bins = report["waits_by_acceptance"]
    assert [b["t_s"] for b in bins] == [0, 5]
    assert [b["orders"] for b in bins] == [40, 40]
    assert bins[0]["long_wait_error_p90"] == 0.0
    assert bins[1]["long_wait_error_p90"] == 1.0  # promised 20 s, waited 10 s
    assert bins[1]["estimated_p50_s"] == 20.0
    assert bins[1]["actual_p50_s"] == 10.0
    assert report["long_wait_error_p90"] == 1.0
    # the promises assumed 100/s and 50/s drained (median of the two halves: 50), met 100/s
    assert report["long_wait_actual_drain_per_s_p50"] == 100.0
    assert report["long_wait_assumed_drain_per_s_p50"] == 50.0


def test_orders_that_never_left_the_line_are_counted_not_dropped():
    report = _figures([(0, 10, 5.0, 6.0), (1, 20, 9.0, None), (2, 30, 12.0, None)]).orders_report(
        ["backlog"]
    )["backlog"]
    assert report["never_left_line"] == 2
    assert report["actual_wait_s"]["n"] == 1
    assert report["waits_by_acceptance"][0]["orders"] == 1


def test_short_waits_have_no_long_wait_error():
    report = _figures([(0, 5, 1.0, 0.5), (1, 8, 1.0, 0.9)]).orders_report(["backlog"])["backlog"]
    assert report["long_waits"] == 0
    assert report["long_wait_error_p90"] is None
    assert report["waits_by_acceptance"][0]["long_wait_error_p90"] is None
    assert report["long_wait_assumed_drain_per_s_p50"] is None


def test_a_coalesced_outcome_marks_leaving_the_line():
    # "reserved" coalesced into the charge's outcome: a failed charge left the line as well
    report = _figures([(0, 10, 5.0, 6.0)], left_as="payment_failed").orders_report(["backlog"])
    assert report["backlog"]["never_left_line"] == 0
    assert report["backlog"]["actual_wait_s"]["n"] == 1
    assert report["backlog"]["long_waits"] == 1
