"""The docs travel with the code: README links the guides in docs/, every relative link in
them resolves inside the repository, and none points outside it (../shared/docs is on no
clone)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_doc_points_outside_the_repository(doc: Path) -> None:
    text = doc.read_text()
    assert "shared/docs" not in text
    assert "../" not in text


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists() or ROOT not in path.parents:
            broken.append(target)
    assert broken == []


def test_readme_links_the_three_guides() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("integrator-guide.md", "architecture.md", "operations.md"):
        assert f"](docs/{name})" in readme


def test_the_runbook_keeps_a_section_for_alerts() -> None:
    assert "\n## Alerts\n" in (ROOT / "docs" / "operations.md").read_text()


# A newcomer reads a doc whole: past this a doc is split (as performance-history.md was).
DOC_MAX_LINES = 600


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_doc_is_longer_than_a_reader_reads_at_once(doc: Path) -> None:
    lines = doc.read_text().count("\n")
    assert lines <= DOC_MAX_LINES, f"{doc.name}: {lines} lines"
