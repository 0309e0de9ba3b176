"""Prove README's two commands are the whole set-up, on a machine with no database services.

Clones the repository into a temporary folder, hides the machine's own PostgreSQL and Redis
from it (the probes of devtools.services point at closed ports, so it starts embedded ones
from pip packages), then runs README's commands as README writes them (extracted from its
"Two commands" block, not repeated here): the run command in the background until the API
answers a claim with the key it printed, then the test command. Prints how long each took.

    python .ci/fresh_machine_check.py [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HIDDEN = {"DEVSERVICES_POSTGRES_ADDR": "127.0.0.1:9", "DEVSERVICES_REDIS_ADDR": "127.0.0.1:9"}
UP_TIMEOUT = 900  # a cold install, an embedded initdb, migrations


def readme_commands(readme: Path) -> tuple[str, str]:
    """(run command, test command) from the first sh block under '## Two commands'."""
    text = readme.read_text()
    section = text.split("## Two commands", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    if block is None:
        raise SystemExit("README has no sh block under '## Two commands'")
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    commands = [c for c in commands if c]
    if len(commands) != 2:  # noqa: PLR2004
        raise SystemExit(f"README's 'Two commands' block holds {len(commands)} commands")
    return commands[0], commands[1]


def say(message: str) -> None:
    print(f"== fresh-machine check: {message}", flush=True)


def wait_for_stack(process: subprocess.Popen[str], deadline: float) -> str:
    """Read the run command's output until it prints the API key; return the key."""
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(f"   | {line}")
        if match := re.search(r"API key\s+(\S+)", line):
            return match.group(1)
        if time.monotonic() > deadline:
            break
    raise SystemExit("the run command never printed an API key")


def claim(key: str) -> dict[str, object]:
    request = urllib.request.Request(
        "http://127.0.0.1:8000/api/v1/campaigns/spring-free-order/claims/",
        data=json.dumps({"customer_id": "fresh-machine"}).encode(),
        headers={
            "Authorization": f"Bearer {key}",
            "Idempotency-Key": f"fresh-{time.time()}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback)
                return json.load(response)
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = parser.parse_args()
    run_command, test_command = readme_commands(ROOT / "README.md")
    workdir = Path(tempfile.mkdtemp(prefix="fresh-machine-"))
    clone = workdir / "main"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(HIDDEN)
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        say(f"cloned into {clone}; services hidden: {HIDDEN}")

        started = time.monotonic()
        say(f"running `{run_command}`")
        stack = subprocess.Popen(
            run_command,
            shell=True,
            cwd=clone,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            key = wait_for_stack(stack, time.monotonic() + UP_TIMEOUT)
            coupon = claim(key)
            say(f"stack up in {time.monotonic() - started:.0f} s; claim answered {coupon}")
        finally:
            os.killpg(stack.pid, signal.SIGINT)  # as Ctrl-C in a terminal
            stack.wait(timeout=60)
        say(f"`{run_command}` stopped with {stack.returncode}")

        started = time.monotonic()
        say(f"running `{test_command}`")
        tests = subprocess.run(test_command, shell=True, cwd=clone, env=env, check=False)
        say(f"`{test_command}` exited {tests.returncode} after {time.monotonic() - started:.0f} s")
        return tests.returncode
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
