"""deploy/: the systemd units run what the stack's process table runs, systemd accepts them,
and the environment file template holds what production refuses to start without.

The units are written for the layout docs/operations.md gives (the code in /srv/campaign/app,
a virtual environment from requirements/production.txt in /srv/campaign/venv, the
environment in /etc/campaign/campaign.env); here those paths are this checkout's.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.processes import PY, QUEUES, ROOT, Layout, table

SYSTEMD = ROOT / "deploy" / "systemd"
TEMPLATE = ROOT / "deploy" / "campaign.env.example"
APP, VENV_PY, ETC = "/srv/campaign/app", "/srv/campaign/venv/bin/python", "/etc/campaign/"
# What production runs: no sandbox, gunicorn on the env file's address, beat logging its lock.
PRODUCTION = Layout(web_bind="${WEB_BIND}", sandbox=None, beat_loglevel="INFO")


def exec_start(unit: str, instance: str = "") -> list[str]:
    """The unit's command line, with this checkout's paths and the instance's specifiers."""
    line = next(
        line.removeprefix("ExecStart=")
        for line in (SYSTEMD / unit).read_text().splitlines()
        if line.startswith("ExecStart=")
    )
    line = line.replace(VENV_PY, PY).replace(APP, str(ROOT))
    return shlex.split(line.replace("%i", instance).replace("%%", "%"))


def test_each_unit_runs_the_process_tables_command_line():
    # given the stack's processes as production lays them out
    procs = table(PRODUCTION)

    # then the web and beat units run their command lines, and the worker template runs
    # each queue's for its instance
    assert exec_start("campaign-web.service") == list(procs["gunicorn"].argv)
    assert exec_start("campaign-beat.service") == list(procs["beat"].argv)
    for queue in QUEUES:
        assert exec_start("campaign-worker@.service", queue) == list(procs[f"worker-{queue}"].argv)


def test_the_target_starts_a_worker_for_every_queue_and_nothing_else():
    # given the target's Wants
    wants = next(
        line.removeprefix("Wants=").split()
        for line in (SYSTEMD / "campaign.target").read_text().splitlines()
        if line.startswith("Wants=")
    )

    # then: web, beat and one worker per queue of the process table
    workers = [f"campaign-worker@{q}.service" for q in QUEUES]
    assert wants == ["campaign-web.service", "campaign-beat.service", *workers]


def test_systemd_accepts_the_units(tmp_path: Path):
    # given the units with this checkout's paths (verify checks that ExecStart exists)
    for unit in SYSTEMD.iterdir():
        text = unit.read_text().replace(VENV_PY, PY).replace(APP, str(ROOT))
        (tmp_path / unit.name).write_text(text.replace(ETC, f"{tmp_path}/"))
    (tmp_path / "campaign.env").write_text(TEMPLATE.read_text())
    units = [
        "campaign.target",
        "campaign-web.service",
        "campaign-beat.service",
        *(f"campaign-worker@{q}.service" for q in QUEUES),
    ]

    # when systemd reads them (no running systemd is needed)
    analyze = shutil.which("systemd-analyze") or "systemd-analyze"  # `make systemd-analyze`
    done = subprocess.run(
        [analyze, "verify", *(f"./{u}" for u in units)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    # then: no error and not one warning (an unknown key or value is only a warning)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def required_variables(source: str) -> set[str]:
    """Variables a settings module reads through `env` with no default."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        through_env = (isinstance(func, ast.Name) and func.id == "env") or (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "env"
        )
        first = node.args[0]
        named = isinstance(first, ast.Constant) and isinstance(first.value, str)
        defaulted = len(node.args) > 1 or any(k.arg == "default" for k in node.keywords)
        if through_env and named and not defaulted:
            names.add(first.value)
    return names


def template(*, commented: bool) -> dict[str, str]:
    """NAME → value of the template's assignments (with `commented`, the `# NAME=` ones too)."""
    pattern = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")
    found = {}
    for line in TEMPLATE.read_text().splitlines():
        if (match := pattern.match(line)) and (commented or not match.group(1)):
            found[match.group(2)] = match.group(3)
    return found


def test_the_template_sets_every_variable_production_requires():
    # given what production reads with no default
    required = required_variables((ROOT / "config/settings/production.py").read_text())
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS"} <= required

    # then the template sets each one
    assert required - set(template(commented=False)) == set()


def test_every_variable_of_the_template_is_one_the_code_or_the_units_read():
    # given every variable name the settings (config's and each app's conf.py), gunicorn's
    # config and wsgi read, and the units'
    code = "\n".join(p.read_text() for p in (ROOT / "config").rglob("*.py"))
    code += "\n".join(p.read_text() for p in ROOT.glob("*/conf.py"))
    code += "\n".join(p.read_text() for p in SYSTEMD.iterdir())
    read = set(re.findall(r"""env(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']""", code))
    read |= set(re.findall(r"""os\.environ\.\w+\(\s*["']([A-Z][A-Z0-9_]*)["']""", code))
    read |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", code))

    # then the template names no variable nothing reads (a typo would be ignored silently)
    assert set(template(commented=True)) - read == set()


def _django_setup(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A process that loads the settings `env` names, and nothing else."""
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_settings_start_from_the_template_alone():
    # given nothing but the template's values in the environment
    env = {"PATH": os.environ.get("PATH", ""), **template(commented=False)}

    # when a process loads production's settings
    done = _django_setup(env)

    # then they load; without one required variable they refuse
    assert done.returncode == 0, done.stderr[-2000:]
    del env["PAYMENT_GATEWAY_KEY"]
    refused = _django_setup(env)
    assert "PAYMENT_GATEWAY_KEY" in refused.stderr


@pytest.mark.parametrize(
    ("source", "required"),
    [
        ('X = env("A")\nY = env("B", default=1)', {"A"}),
        ('X = env.list("C")\nY = env.int("D", 5)\nZ = env.db("E")', {"C", "E"}),
    ],
)
def test_required_variables_are_those_read_with_no_default(source: str, required: set[str]):
    assert required_variables(source) == required
