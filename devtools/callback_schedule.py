"""The callbacks' retry schedule as the table in docs/integrator-guide.md ("Callbacks"),
computed from `orders.services.callbacks.retry_schedule` with the settings in force (the
defaults, unless the environment sets CALLBACK_RETRY_*):

    python -m devtools.callback_schedule           # print the table
    python -m devtools.callback_schedule --write   # rewrite it in the guide

tests/orders/test_callback_schedule.py fails when the guide's table is not this one.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orders.services.callbacks import RetryStep

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "integrator-guide.md"
START = "<!-- retry schedule: written by `python -m devtools.callback_schedule --write` -->"
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


def table(steps: list[RetryStep], *, passing_delay: float) -> str:
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


def current() -> str:
    from django.conf import settings  # noqa: PLC0415 (Django is set up by the caller)

    from orders.services.callbacks import retry_schedule  # noqa: PLC0415

    return table(retry_schedule(), passing_delay=settings.CALLBACK_PASSING_DELAY_SECONDS)


def documented(text: str) -> str:
    """The table between the markers in the guide's text."""
    _, found, rest = text.partition(START)
    if not found or END not in rest:
        raise ValueError(f"docs/integrator-guide.md lacks the markers {START!r} ... {END!r}")
    return rest.split(END, 1)[0].strip()


def write(path: Path = GUIDE) -> None:
    text = path.read_text()
    old = documented(text)
    path.write_text(text.replace(old, current(), 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--write", action="store_true", help="rewrite the guide's table")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django  # noqa: PLC0415

    django.setup()
    if args.write:
        write()
    else:
        sys.stdout.write(current() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
