"""The signature verifiers we hand integrators (docs/samples/verify_webhook.py and .js, the one
in docs/security.md) accept what `orders.services.signature` signs, also during a rotation,
and refuse a changed body, another secret, a stale timestamp and every malformed header
without raising. tests/orders/test_pipeline_webhook_samples.py runs the samples against a
real delivery from the stack."""

from __future__ import annotations

import base64
import json
import re
import runpy
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orders.services.callbacks import signature

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "docs" / "samples"
SECRET = "whsec-test-secret"
OLD_SECRET = "whsec-old-secret"
BODY = b'{"id":"0b6c7c6e-5d0c-4f55-9a37-9d1f4a0d8a11","status":"paid"}'
NODE = shutil.which("node") or "/usr/bin/node"

Verify = Callable[[str, bytes, str], bool]


def malformed(now: int) -> list[str]:
    mac = signature(secret=SECRET, body=BODY, timestamp=now).split("v1=", 1)[1]
    return [
        "",
        "garbage",
        "t=",
        f"t={now}",  # no v1
        f"v1={mac}",  # no t
        f"t=abc,v1={mac}",
        f"t={now},t={now},v1={mac}",
        f"t={now},v1={mac},stray",
        f"t={now},v1=ñ",
        f"t={now},v1={mac[:-1]}",
        f"t={'9' * 5000},v1={mac}",
        f"t=1_0,v1={mac}",
        f"t=\u0663,v1={mac}",  # an Arabic-Indic digit, which int() would take
        f"t= {now},v1={mac}",
    ]


def cases(now: int) -> dict[str, tuple[str, bytes, str, bool]]:
    """name -> (secret, body, header, expected)."""
    good = signature(secret=SECRET, body=BODY, timestamp=now)
    rotating = signature(secret=SECRET, body=BODY, timestamp=now, previous_secret=OLD_SECRET)
    stale = signature(secret=SECRET, body=BODY, timestamp=now - 3600)
    return {
        "valid": (SECRET, BODY, good, True),
        "rotating, new secret": (SECRET, BODY, rotating, True),
        "rotating, old secret": (OLD_SECRET, BODY, rotating, True),
        "another secret": ("whsec-other", BODY, good, False),
        "changed body": (SECRET, BODY.replace(b"paid", b"paie"), good, False),
        "stale": (SECRET, BODY, stale, False),
        **{f"malformed {i}": (SECRET, BODY, h, False) for i, h in enumerate(malformed(now))},
    }


def security_md_verify() -> Verify:
    """The `verify` of the Python block in docs/security.md, as written there."""
    text = (ROOT / "docs" / "security.md").read_text()
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "def verify(" in b
    ]
    namespace: dict[str, object] = {}
    exec(re.sub(r"^  ", "", block, flags=re.MULTILINE), namespace)  # noqa: S102 (our own doc)
    return namespace["verify"]  # type: ignore[return-value]


def sample_verify() -> Verify:
    return runpy.run_path(str(SAMPLES / "verify_webhook.py"))["verify"]


@pytest.mark.parametrize("load", [security_md_verify, sample_verify], ids=["security.md", "py"])
def test_the_python_verifiers(load: Callable[[], Verify]) -> None:
    # given
    verify = load()
    now = int(time.time())
    # when
    answers = {
        name: verify(secret, body, header) for name, (secret, body, header, _) in cases(now).items()
    }
    # then: every answer a bool, none raised
    assert answers == {name: case[3] for name, case in cases(now).items()}


NODE_RUNNER = """
const { verify } = require(process.argv[1]);
const cases = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const out = {};
for (const [name, [secret, body, header]] of Object.entries(cases)) {
  out[name] = verify(secret, Buffer.from(body, "base64"), header);
}
process.stdout.write(JSON.stringify(out));
"""


def test_the_javascript_verifier() -> None:
    # given
    now = int(time.time())
    given = {
        name: [secret, base64.b64encode(body).decode(), header]
        for name, (secret, body, header, _) in cases(now).items()
    }
    # when
    run = subprocess.run(
        [NODE, "-e", NODE_RUNNER, str(SAMPLES / "verify_webhook.js")],
        input=json.dumps(given),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    # then
    assert json.loads(run.stdout) == {name: case[3] for name, case in cases(now).items()}
