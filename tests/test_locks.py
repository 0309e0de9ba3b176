"""The locks agree with pyproject.toml, and the tests run on what they pin.

requirements/production.txt (the base dependencies, what deploy/ installs) and
requirements/dev.txt (plus the extras dev, local and bench, what `make install` installs with
`--require-hashes`) are made by `make lock`. A dependency added to or tightened in
pyproject.toml without `make lock` fails here, offline: every requirement must be pinned in
its lock by a version that satisfies it, every pin must carry hashes, and a package pinned in
both locks must be pinned alike, so that what the tests ran is what is deployed.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ROOT / "requirements" / "production.txt"
DEV = ROOT / "requirements" / "dev.txt"
DEV_EXTRAS = ("dev", "local", "bench")  # the Makefile's `lock` and `install`

PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+?)\s*(?:\\|$)")


def pins(lock_text: str) -> dict[str, tuple[Version, int]]:
    """Canonical name → (pinned version, number of hashes) of a `uv pip compile` lock."""
    found: dict[str, tuple[Version, int]] = {}
    name = None
    for line in lock_text.splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match.group(1))
            found[name] = (Version(match.group(2)), 0)
        elif name is not None and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[name]
            found[name] = (version, hashes + 1)
        elif not line.startswith(" "):
            name = None
    return found


def disagreements(requirements: list[str], lock_text: str) -> list[str]:
    """A sentence for each requirement the lock does not pin, or pins outside its range, and
    for each pin without a hash."""
    pinned = pins(lock_text)
    wrong = [f"{name}=={version} has no --hash" for name, (version, n) in pinned.items() if not n]
    for line in requirements:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name not in pinned:
            wrong.append(f"{requirement} is not pinned")
        elif not requirement.specifier.contains(pinned[name][0], prereleases=True):
            wrong.append(f"{requirement} is not satisfied by {name}=={pinned[name][0]}")
    return wrong


def project() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"": data["dependencies"], **data["optional-dependencies"]}


def test_production_lock_pins_every_base_dependency():
    # given the base dependencies and the production lock
    requirements = project()[""]

    # then every one is pinned, within its range, with hashes
    assert disagreements(requirements, PRODUCTION.read_text()) == []


def test_dev_lock_pins_the_base_dependencies_and_the_extras_the_makefile_installs():
    # given everything `make install` asks for (and Flower, which `make run FLOWER=1` adds)
    groups = project()
    requirements = [r for extra in ("", *DEV_EXTRAS, "flower") for r in groups[extra]]

    # then the dev lock pins every one of them
    assert disagreements(requirements, DEV.read_text()) == []


def test_what_is_tested_is_what_is_deployed():
    # given both locks
    production, dev = pins(PRODUCTION.read_text()), pins(DEV.read_text())

    # then every production pin is in the dev lock at the same version
    assert {n: v for n, (v, _) in production.items()} == {
        n: dev[n][0] for n in production if n in dev
    }
    assert set(production) <= set(dev)


def test_the_environment_the_tests_run_in_is_the_dev_lock():
    # given the dev lock
    locked = pins(DEV.read_text())

    # then every package it pins is installed here at that version (`make install`)
    installed = {}
    for name in locked:
        try:
            installed[name] = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            installed[name] = None
    assert {n: v for n, (v, _) in locked.items()} == installed


def test_the_check_fails_on_a_requirement_the_lock_does_not_meet():
    # given a lock of two pins, one of them without a hash
    lock = (
        "celery==5.4.0 \\\n    --hash=sha256:aa\n"
        "redis==5.0.1 \\\n    --hash=sha256:bb\n"
        "    # via celery\n"
        "kombu==5.3.0\n"
    )

    # when pyproject asks for a newer Celery and a package the lock lacks
    found = disagreements(["celery>=5.5,<5.8", "redis>=5.0", "httpx>=0.27"], lock)

    # then each disagreement is named
    assert found == [
        "kombu==5.3.0 has no --hash",
        "celery<5.8,>=5.5 is not satisfied by celery==5.4.0",
        "httpx>=0.27 is not pinned",
    ]
