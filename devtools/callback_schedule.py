"""The callbacks' retry schedule as the table in docs/integrator-guide.md ("Callbacks"): how
it is written, and where it sits in the guide. The steps come from
`orders.services.callbacks.retry_schedule` (devtools imports no app: the caller passes them):

    python manage.py callback_schedule           # print the table, with the settings in force
    python manage.py callback_schedule --write   # rewrite it in the guide

tests/orders/test_callback_schedule.py fails when the guide's table is not the code's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class RetryStep(Protocol):
    """One attempt (orders.services.callbacks.RetryStep, a frozen dataclass), in seconds."""

    @property
    def attempt(self) -> int: ...
    @property
    def wait_min(self) -> float: ...
    @property
    def wait_max(self) -> float: ...
    @property
    def since_min(self) -> float: ...
    @property
    def since_max(self) -> float: ...


GUIDE = Path(__file__).resolve().parents[1] / "docs" / "integrator-guide.md"
START = "<!-- retry schedule: written by `python manage.py callback_schedule --write` -->"
END = "<!-- end of the retry schedule -->"
MINUTE, HOUR = 60.0, 3600.0
DASH = "\N{EN DASH}"  # between the ends of a range, as the guide writes them


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _unit(seconds: float) -> tuple[float, str]:
    if seconds < MINUTE:
        return 1.0, "s"
    if seconds < HOUR:
        return MINUTE, "min"
    return HOUR, "h"


def span(low: float, high: float) -> str:
    """`1.5-2 s`, `47 s-1 min` (with an en dash): one unit when both ends share it."""
    (low_size, low_unit), (high_size, high_unit) = _unit(low), _unit(high)
    if low_unit == high_unit:
        return f"{_number(low / low_size)}{DASH}{_number(high / high_size)} {high_unit}"
    return f"{_number(low / low_size)} {low_unit}{DASH}{_number(high / high_size)} {high_unit}"


def table(steps: Sequence[RetryStep], *, passing_delay: float) -> str:
    """One row per attempt while the wait grows, then one row for the attempts at the cap."""
    cap = steps[-1].wait_max
    first_capped = next(s for s in steps if s.wait_max == cap)
    last = steps[-1]
    rows = [
        "| Attempt | Wait before it | Time since the change |",
        "|---|---|---|",
        f"| 1 | — (at once; a passing status {_number(passing_delay)} s later) | 0 |",
    ]
    rows += [
        f"| {s.attempt} | {span(s.wait_min, s.wait_max)} | {span(s.since_min, s.since_max)} |"
        for s in steps[1:]
        if s.attempt < first_capped.attempt
    ]
    rows.append(
        f"| {first_capped.attempt}{DASH}{last.attempt} | {span(first_capped.wait_min, cap)}"
        f" each | {span(first_capped.since_min, first_capped.since_max)} up to "
        f"{span(last.since_min, last.since_max)}; given up after attempt {last.attempt} |"
    )
    return "\n".join(rows)


def documented(text: str) -> str:
    """The table between the markers in the guide's text."""
    _, found, rest = text.partition(START)
    if not found or END not in rest:
        raise ValueError(f"docs/integrator-guide.md lacks the markers {START!r} ... {END!r}")
    return rest.split(END, 1)[0].strip()


def write(new_table: str, path: Path = GUIDE) -> None:
    """Replace the table between the markers in the guide."""
    text = path.read_text()
    path.write_text(text.replace(documented(text), new_table.strip(), 1))
