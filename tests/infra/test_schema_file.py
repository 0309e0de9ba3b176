"""The schema travels with the code (docs/compatibility.md): docs/openapi.yaml is what the code
generates, its version is the package's and the changelog's, and nothing in it breaks a
client of the last release (devtools/schema_diff.py)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

from devtools.schema_diff import CURRENT, RELEASES, breaking_changes, load, releases

ROOT = Path(__file__).resolve().parents[2]


def changelog_release() -> str:
    """The newest release CHANGELOG.md names (Keep a Changelog: `## [x.y.z] - date`)."""
    text = (ROOT / "CHANGELOG.md").read_text()
    found = re.search(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, re.MULTILINE)
    assert found, "CHANGELOG.md names no release"
    return found.group(1)


def test_the_committed_schema_is_what_the_code_generates(tmp_path: Path) -> None:
    # given
    generated = tmp_path / "openapi.yaml"
    # when: as `make schema` writes it
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(generated))
    # then
    assert generated.read_text() == CURRENT.read_text(), (
        "docs/openapi.yaml is not what the code generates: run `make schema` and commit it"
    )


def test_the_package_the_schema_and_the_changelog_carry_one_version() -> None:
    # given
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    # when
    versions = {
        "pyproject.toml": package,
        "SPECTACULAR_SETTINGS": settings.SPECTACULAR_SETTINGS["VERSION"],
        "docs/openapi.yaml": load(CURRENT)["info"]["version"],
        "CHANGELOG.md": changelog_release(),
    }
    # then
    assert set(versions.values()) == {package}, versions
    assert re.fullmatch(r"\d+\.\d+\.\d+", package)


def test_the_changelogs_release_has_its_schema_kept() -> None:
    # given / when
    kept = RELEASES / f"{changelog_release()}.yaml"
    # then: `make schema-release` keeps it
    assert kept.exists(), f"{kept.relative_to(ROOT)} is missing: run `make schema-release`"
    assert releases()[-1] == kept


def test_nothing_breaks_a_client_of_the_last_release() -> None:
    # given
    last = releases()[-1]
    # when
    problems = breaking_changes(load(last), load(CURRENT))
    # then: a breaking change needs /api/v2/ (docs/compatibility.md)
    assert problems == []


def test_nothing_breaks_a_client_of_any_release_of_this_major() -> None:
    """Not only the newest: a client written against 1.1.0 is as much a v1 client as one of
    the latest release (docs/compatibility.md)."""
    # given
    major = load(CURRENT)["info"]["version"].split(".")[0]
    kept = [p for p in releases() if p.stem.split(".")[0] == major]
    # when
    problems = {p.stem: breaking_changes(load(p), load(CURRENT)) for p in kept}
    # then
    assert "1.1.0" in problems
    assert problems == {version: [] for version in problems}
