"""bench.instructions: callgrind counts what each measured span runs, and nothing around it.

A real valgrind runs a small Python program (not Django: a few seconds, not minutes)."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from bench import instructions
from bench.instructions import ROOT, callgrind, report
from bench.spans import LABELS_ENV, measured

# The same work per unit in both spans, with more of it around them that must not count.
PROGRAM = """
import hashlib
from bench.spans import measured

def work(units):
    for i in range(units):
        hashlib.sha256(str(i).encode() * 20).hexdigest()

work(3000)
with measured("one", 1000):
    work(1000)
work(5000)
with measured("two", 2000):
    work(2000)
work(3000)
"""


@pytest.fixture
def valgrind() -> None:
    if shutil.which("valgrind") is None:
        missing = "valgrind is not installed (`make valgrind` installs Debian's)"
        if os.environ.get("CI"):
            pytest.fail(missing)  # CI installs it (.ci/run): never let it skip unnoticed
        pytest.skip(missing)


@pytest.mark.usefixtures("valgrind")
def test_each_span_counts_its_own_work_and_nothing_around_it(tmp_path) -> None:
    # when
    spans = callgrind(
        [sys.executable, "-c", PROGRAM], tmp_path, {**os.environ, "PYTHONPATH": str(ROOT)}
    )
    # then: the spans in the order they ran, with their counts
    assert [(s["label"], s["count"]) for s in spans] == [("one", 1000), ("two", 2000)]
    one, two = (s["instructions"] for s in spans)
    # twice the work counts twice the instructions: the 11,000 units around the spans (more
    # than both together) are not in either
    assert 1.9 < two / one < 2.1
    # and the per-unit figures agree
    assert abs(one / 1000 - two / 2000) / (one / 1000) < 0.05


def test_outside_the_tool_a_span_only_runs_its_block(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(LABELS_ENV, raising=False)
    ran = []
    with measured("nothing", 1):
        ran.append(1)
    assert ran == [1]
    assert not list(tmp_path.iterdir())


def test_the_report_gives_each_span_per_unit_and_against_the_floor() -> None:
    spans = [
        {"label": "floor_insert", "count": 10, "instructions": 24_000_000},
        {"label": "order", "count": 20, "instructions": 60_000_000},
    ]
    lines = report(spans)
    assert "2400 k instructions" in lines[0]
    assert "1.00" in lines[0]
    assert "3000 k instructions" in lines[1]
    assert "0.80" in lines[1]  # 2,400 / 3,000


def test_a_dump_is_read_by_its_summary_not_its_totals(tmp_path) -> None:
    dump = tmp_path / "callgrind.out.1"
    dump.write_text("events: Ir\nsummary: 1234\nfn=x\n0 5\ntotals: 99999\n")
    assert instructions.dump_total(dump) == 1234
