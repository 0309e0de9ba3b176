"""The repository carries an index of runs, not the runs (bench/results_index.py): the folder
stays small, every file in it is a run the index names, and each runner's line says what the
run found."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import results_index
from bench.results_index import INDEX, RESULTS

# issue 28: bench/results/ was 27 MB of old runs, charts and profiles that every clone fetched.
RESULTS_MAX_BYTES = 3 * 2**20


def _kept() -> list[Path]:
    return sorted(p for p in RESULTS.rglob("*") if p.is_file() and p != INDEX)


def test_the_results_folder_stays_small() -> None:
    size = sum(p.stat().st_size for p in RESULTS.rglob("*") if p.is_file())
    assert size < RESULTS_MAX_BYTES, f"bench/results/ is {size / 2**20:.1f} MB"


def test_every_file_kept_is_a_run_the_index_marks_kept() -> None:
    kept = {
        row.split(" | ", 1)[0][2:].removesuffix(" *kept*")
        for row in INDEX.read_text().splitlines()
        if row.startswith("| ") and " *kept* | " in row
    }
    strays = [p.relative_to(RESULTS) for p in _kept() if p.parent != RESULTS or p.stem not in kept]
    assert strays == []


def test_the_index_opens_with_the_header_new_indexes_get() -> None:
    assert INDEX.read_text().startswith(results_index.HEADER)


def test_one_full_run_is_kept_with_its_chart() -> None:
    # given / when
    full = sorted(p.name for p in RESULTS.glob("full-*"))
    # then
    assert len(full) == 2
    assert {Path(name).suffix for name in full} == {".json", ".png"}


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.stem)
def test_a_kept_runs_line_reads_its_headline_from_the_json(path: Path) -> None:
    # given
    res = json.loads(path.read_text())
    # when
    line = results_index.line(res, path.stem, kept=True)
    # then
    assert line in INDEX.read_text().splitlines(keepends=True)


def test_each_kind_of_run_gets_its_headline() -> None:
    heads = {
        results_index.kind(r): results_index.line(r, "x")
        for r in (json.loads(p.read_text()) for p in RESULTS.glob("*.json"))
    }
    assert set(heads) == {"burst", "chaos", "cluster", "soak"}
    assert "ms/paid order" in heads["burst"]
    assert "9 passed, 0 failed" in heads["chaos"]
    assert "3 host(s)" in heads["cluster"]
    assert "verdicts met" in heads["soak"]


def test_a_run_appends_one_line_under_the_header(tmp_path: Path) -> None:
    # given
    index = tmp_path / "INDEX.md"
    res = {
        "mode": "full",
        "command": "make bench | tee log",
        "started_at": "2026-12-07T10:00:00+00:00",
        "commit": "abc1234",
        "targets": [{"name": "a", "passed": True}, {"name": "b", "passed": False}],
    }
    # when
    results_index.append(res, "full-20261207T100000Z", index=index)
    results_index.append({**res, "mode": "quick"}, "quick-20261207T110000Z", index=index)
    # then
    text = index.read_text()
    assert text.startswith(results_index.HEADER)
    assert text.count("# Benchmark runs") == 1
    assert results_index.runs_named(index) == {"full-20261207T100000Z", "quick-20261207T110000Z"}
    assert text.endswith(
        "| quick-20261207T110000Z | 2026-12-07 10:00 | abc1234 | `make bench \\| tee log` "
        "| 1/2 targets met (missed: b) |\n"
    )


def test_a_plain_full_run_replaces_the_previous_one(tmp_path: Path) -> None:
    # given
    results, run = tmp_path / "results", tmp_path / "runs" / "full-2"
    results.mkdir()
    run.mkdir(parents=True)
    for name in ("full-1.json", "full-1.png", "quick-1.json"):
        (results / name).write_text("old")
    (results / "INDEX.md").write_text("| full-1 *kept* | x |\n| quick-1 *kept* | y |\n")
    new = [run / "full-2.json", run / "full-2.png"]
    for path in new:
        path.write_text("new")
    # when
    copies = results_index.keep_latest_full(new, results=results)
    # then
    assert sorted(p.name for p in results.iterdir()) == [
        "INDEX.md",
        "full-2.json",
        "full-2.png",
        "quick-1.json",
    ]
    assert [p.read_text() for p in copies] == ["new", "new"]
    assert (results / "INDEX.md").read_text() == "| full-1 | x |\n| quick-1 *kept* | y |\n"


def test_the_share_command_packs_the_run_folder_and_the_logs_beside_it() -> None:
    folder = results_index.RUNS / "chaos-full-20261207T100000Z"
    logs = results_index.ROOT / ".run" / "chaos" / "full" / "logs"
    assert results_index.share(folder, logs) == (
        "tar czf bench-runs-chaos-full-20261207T100000Z.tgz "
        "-C bench/runs chaos-full-20261207T100000Z -C .run/chaos/full logs"
    )


def test_the_runs_folder_is_ignored_by_git() -> None:
    ignored = (results_index.ROOT / ".gitignore").read_text().splitlines()
    assert "bench/runs/" in ignored


# A file under bench/results/ named in a doc, unless the doc reads it from history (`git show`).
CITED = re.compile(r"(?<!:)bench/results/([\w./-]+\.(?:json|png|md))")


def test_the_docs_cite_only_runs_the_folder_keeps() -> None:
    """A doc that cites a run the folder no longer keeps (a full run a newer `make bench` has
    replaced, too) cites its line instead: "bench/results/INDEX.md, run <run>"."""
    docs = [results_index.ROOT / "README.md", *(results_index.ROOT / "docs").glob("*.md")]
    missing = [
        f"{doc.name}: {name}"
        for doc in docs
        for name in CITED.findall(doc.read_text())
        if not (RESULTS / name).exists()
    ]
    assert missing == []
