"""The retry schedule in docs/integrator-guide.md ("Callbacks") is the one the service runs:
the table is what `manage.py callback_schedule` writes from `retry_schedule` with the default
settings, and it covers at least CALLBACK_RETRY_HOURS."""

from __future__ import annotations

from devtools.callback_schedule import DASH, GUIDE, documented, span
from orders.management.commands.callback_schedule import schedule_table
from orders.services.callbacks import retry_delays, retry_schedule


def test_the_guides_table_is_the_schedule_the_service_runs() -> None:
    # given / when
    table = documented(GUIDE.read_text())
    # then
    assert table == schedule_table(), (
        "docs/integrator-guide.md's retry schedule is stale: run "
        "`python manage.py callback_schedule --write` and commit it"
    )


def test_the_schedule_is_retry_delays_with_its_jitter_and_covers_a_day(settings) -> None:
    # given
    delays = retry_delays()
    # when
    steps = retry_schedule()
    # then: the first attempt at once, then one per delay, each waiting 3/4 to all of it
    assert [s.attempt for s in steps] == list(range(1, len(delays) + 2))
    assert [s.wait_max for s in steps[1:]] == delays
    assert all(s.wait_min == 0.75 * s.wait_max for s in steps)
    assert steps[-1].since_max == sum(delays)
    # at its shortest the last attempt is still CALLBACK_RETRY_HOURS after the change
    assert steps[-1].since_min >= settings.CALLBACK_RETRY_HOURS * 3600 >= 24 * 3600


def test_spans_are_written_in_the_unit_of_their_size() -> None:
    assert span(1.5, 2) == f"1.5{DASH}2 s"
    assert span(46.5, 62) == f"46.5 s{DASH}1 min"
    assert span(3600 * 24.1, 3600 * 32.1) == f"24.1{DASH}32.1 h"
