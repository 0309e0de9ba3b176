"""`python -m bench.run`'s phase choice: a phase that starts from another's result is refused
before the stack starts, with the reason, instead of failing halfway through a run."""

from __future__ import annotations

import pytest

from bench.run import parse_args


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--skip", "intake"], "give --e2e-rate"),
        (["--skip", "intake,backlog", "--e2e-rate", "150"], "skip overload too"),
        (["--skip", "e2e"], "give --e2e-rate or skip it"),
        (["--skip", "intakes"], "unknown phase(s) intakes"),
    ],
)
def test_a_phase_without_what_it_starts_from_is_refused(
    argv: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2  # argparse's usage error
    assert reason in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--skip", "floors,claims,backlog,overload,scale", "--e2e-rate", "150"],
        ["--skip", "floors,claims,intake,backlog,overload,scale", "--e2e-rate", "150"],
        ["--skip", "e2e,backlog"],
        # the backlog alone, at 1.5 x a rate given rather than measured
        ["--skip", "floors,claims,intake,e2e,overload,scale", "--e2e-rate", "100"],
    ],
)
def test_consistent_choices_are_taken(argv: list[str]) -> None:
    assert parse_args(argv).mode == "quick"
