"""Every file that a comment, a docstring or a document names exists in the repository.

Scans the tracked .py files' comments and docstrings, and the whole text of the tracked
documents and configuration (.md, .cfg, .toml, .ini, .service, .sh, .yml, .yaml, .example,
Makefile, shell scripts), for what looks like a path: `orders/services/transitions.py`,
`docs/operations.md`, `tests/cluster/`, a bare `<name>.md` or `test_<name>.py`. A relative path is
looked up from the repository's root and from the citing file's folder. A name that is no
file of ours fails the test, with where it was cited.

A name that ends in `-` or `_` is the start of a family of names
(`bench/results/soak-<stamp>.json`): one file of the family must exist.

Not checked, each for its reason (RUNTIME, RECORDS and the rules in `_candidates`):
- absolute paths (/etc/campaign/campaign.env, /srv/campaign/venv, /api/v1/orders/): they
  name places on the target machine or in a URL, not in the repository;
- the folders that processes write at run time and git ignores (RUNTIME below);
- a slashed word whose first part is no file or folder of ours and which has no file
  suffix (read/write, text/html, and/or): not a path; nor a rate (orders/s, requests/min).
"""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]

SUFFIXES = {".md", ".cfg", ".toml", ".ini", ".service", ".sh", ".yml", ".yaml", ".example"}
NAMES = {"Makefile"}

# Written while the stack, the benchmark or the tests run, and ignored by git
# (.gitignore): cited as where to look, never committed.
RUNTIME = (
    ".run/",  # make run's and the tests' logs, screenshots, pid files (devtools/stack.py)
    "bench/runs/",  # a benchmark run's profiles, logs and raw figures
    ".venv/",  # make install's virtual environment
    "staticfiles/",  # collectstatic's output on a host
)

# Records of past runs: each cites the files as they were at the commit it names, and is not
# rewritten when a file moves later.
RECORDS = ("bench/results/",)
RATES = {"s", "ms", "min", "h"}

# A relative path: two or more parts joined by slashes, not part of a URL, a dotted name, an
# absolute path or a glob.
SLASHED = re.compile(r"(?<![\w@:/.~$*<{-])(?:\./)?([\w][\w.-]*(?:/[\w.-]+)+/?)")
# A bare file name that can only mean a file of ours: a document, or a test module.
BARE = re.compile(r"(?<![\w/.-])([\w-]+\.md|test_\w+\.py|conftest\.py)(?![\w/-])")
FILE_SUFFIX = re.compile(r"\.[a-z]{1,8}$")


def scanned(path: str) -> bool:
    p = PurePosixPath(path)
    return p.suffix == ".py" or p.suffix in SUFFIXES or p.name in NAMES


def shell_script(root: Path, path: str) -> bool:
    """An extensionless script of ours (.ci/run): its whole text is read like a document."""
    if PurePosixPath(path).suffix:
        return False
    try:
        with (root / path).open("rb") as file:
            first = file.readline()
    except OSError:
        return False
    return first.startswith(b"#!") and b"sh" in first


def python_prose(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every comment and every docstring of a Python module."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                text = first.value.value
                if isinstance(text, str):
                    yield first.lineno, text


def _candidates(text: str, top: set[str]) -> Iterator[str]:
    text = re.sub(r"\w+://\S+", " ", text)  # URLs
    for match in SLASHED.finditer(text):
        path = match.group(1).rstrip(".")
        first, last = path.split("/", 1)[0], path.rsplit("/", 1)[-1]
        if last in RATES:
            continue
        if first in top or FILE_SUFFIX.search(path):
            yield path
    for match in BARE.finditer(text):
        yield match.group(1)


def unwrapped(lines: list[str]) -> list[str]:
    """The lines with a path that wraps after a slash (`bench/results/` at a line's end, the
    rest on the next) put back together on the first line, so that it is read whole. Only a
    rest that looks like a file or a folder is taken: `bench/results/` then "differ" is prose."""
    out = list(lines)
    for i in range(len(out) - 1):
        rest = re.match(r"\s*([\w-][\w.-]*(?:/[\w.-]+)*(?:\.[A-Za-z]\w*|/))(?!\w)", out[i + 1])
        if out[i].rstrip().endswith("/") and rest:
            out[i] = out[i].rstrip() + rest.group(1)
            out[i + 1] = out[i + 1][rest.end() :]
    return out


def missing_references(root: Path, files: Iterable[str]) -> list[str]:
    """'<file>:<line>: <path>' for each path cited in `files` (relative to `root`) that is
    neither one of `files` nor a folder holding one."""
    files = sorted(files)
    known = set(files)
    folders = {str(parent) for f in files for parent in PurePosixPath(f).parents}
    known |= {f"{folder}/" for folder in folders} | folders
    basenames = {PurePosixPath(f).name for f in files}
    top = {f.split("/", 1)[0] for f in files}
    found = []
    for name in files:
        if name.startswith(RECORDS) or not (scanned(name) or shell_script(root, name)):
            continue
        text = (root / name).read_text(encoding="utf-8")
        if name.endswith(".py"):
            pieces = [
                (line, "\n".join(unwrapped(p.splitlines()))) for line, p in python_prose(text)
            ]
        else:
            pieces = list(enumerate(unwrapped(text.splitlines()), start=1))
        here = PurePosixPath(name).parent
        for line, piece in pieces:
            for path in _candidates(piece, top):
                if path.startswith(RUNTIME) or f"{path}/" in RUNTIME:
                    continue
                if path.endswith(("-", "_")):
                    exists = any(f.startswith(path) for f in files)  # a family of names
                elif "/" not in path and path.endswith(".py"):
                    exists = path in basenames  # a test module, wherever its folder is
                else:
                    beside = str(here / path) if str(here) != "." else path
                    in_docs = f"docs/{path}" if "/" not in path else path  # a bare document name
                    exists = bool({path, beside, in_docs} & known)
                if not exists:
                    found.append(f"{name}:{line}: {path}")
    return found


def tracked(root: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (root / name).is_file()]


def test_every_file_a_comment_or_document_names_exists() -> None:
    try:
        files = tracked(ROOT)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of tracked files")
    missing = missing_references(ROOT, files)
    assert not missing, "cited but not in the repository:\n" + "\n".join(missing)


def test_the_check_fails_on_a_file_that_does_not_exist(tmp_path: Path) -> None:
    # given: a small tree whose comments, docstrings and documents cite files, some missing
    (tmp_path / "docs").mkdir()
    (tmp_path / "app").mkdir()
    (tmp_path / "docs" / "guide.md").write_text(
        "See [the other](other.md), app/models.py, API.md and docs/gone.md.\n"
        "Logs go to .run/app.log and bench/runs; the unit reads /etc/app/app.env.\n"
        "Wrapped at a slash, read whole: docs/\nother.md, docs/\nlost.md; docs/\nprose.\n"
    )
    (tmp_path / "docs" / "other.md").write_text("Back to [the guide](guide.md), read/write.\n")
    (tmp_path / "app" / "models.py").write_text(
        '"""Models (docs/guide.md)."""\n'
        "# the rules: app/rules.py, and tests in test_models.py\n"
        'TEMPLATE = "app/templates/only/a/string.html"  # code, not prose\n'
    )
    files = ["docs/guide.md", "docs/other.md", "app/models.py"]
    # when
    missing = missing_references(tmp_path, files)
    # then: each missing file is named where it is cited, and nothing else is
    assert missing == [
        "app/models.py:2: app/rules.py",
        "app/models.py:2: test_models.py",
        "docs/guide.md:1: docs/gone.md",
        "docs/guide.md:1: API.md",
        "docs/guide.md:4: docs/lost.md",
    ]
