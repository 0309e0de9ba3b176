"""The import graph keeps its shape: config, the shell, sits on top and wires the apps;
below it dependencies point one way (orders → coupons → shop → infra, so infra, the ground
every app stands on, imports no app), and no package imports its own modules in a loop. The
contracts are pyproject.toml's [tool.importlinter]; import-linter reads the imports
from the source, so an import inside a function or under TYPE_CHECKING counts as well.

Also: each module that DRF loads by its dotted path from settings can be imported first, in a
fresh process (DRF imports them while rest_framework.views itself is loading)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ["config", "infra", "devtools", "shop", "coupons", "orders", "bench"]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_import_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("path", "line", "broken"),
    [
        # infra, the ground, reaching up into an app or into the shell
        ("infra/fast.py", "from shop import selectors", "infra is not allowed to import shop"),
        ("infra/api.py", "import orders.models", "infra is not allowed to import orders"),
        ("infra/health.py", "from config import celery", "infra is not allowed to import config"),
        # an app reaching up into the shell that wires it
        (
            "orders/services/nudges.py",
            "from config import celery",
            "orders is not allowed to import config",
        ),
        # the ground and the dev tooling stay apart
        ("infra/logs.py", "import devtools.stack", "infra is not allowed to import devtools"),
        # the way up the chain, even for a type only
        (
            "coupons/selectors.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from orders import models",
            "coupons is not allowed to import orders",
        ),
        # the circle that was: the nudges importing the tasks, which call the services
        ("orders/services/nudges.py", "from orders import tasks", "No cycles are allowed"),
        # a circle between two services, inside a function
        (
            "orders/services/transitions.py",
            "def late():\n    from orders.services import holds",
            "No cycles are allowed",
        ),
    ],
    ids=[
        "infra-shop",
        "infra-orders",
        "infra-config",
        "orders-config",
        "infra-devtools",
        "coupons-orders",
        "nudges-tasks",
        "services-circle",
    ],
)
def test_the_contracts_break_on_a_bad_import(
    tmp_path: Path, path: str, line: str, broken: str
) -> None:
    # given: a copy of the packages with one import that breaks the shape
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / path
    target.write_text(f"{target.read_text()}\n{line}\n")
    # when
    result = lint_imports(tmp_path)
    # then
    assert result.returncode != 0
    assert broken in result.stdout


@pytest.mark.parametrize(
    "module",
    [
        "infra.api",
        "infra.parsers",
        "infra.versioning",
        "shop.api.authentication",
        "shop.api.throttling",
        "shop.api.views",
        "orders.api.views",
        "rest_framework.views",
    ],
)
def test_a_module_drf_loads_can_be_imported_first(module: str) -> None:
    code = f"import django; django.setup(); import {module}; import rest_framework.views"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
