"""The orchestrator's end of the load generator: start it as its own process (own process
group, so Stack.stop_all stops it too), send it one JSON command per line, read the answer."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from typing import Any

from bench.stack import CALLBACK_HOST, CALLBACK_PORT, ROOT, WEB_URL, Stack


class LoadClient:
    def __init__(self, stack: Stack, *, api_key: str, slug: str) -> None:
        log = (stack.logs / "loadgen.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.load",
                "--base-url",
                WEB_URL,
                "--api-key",
                api_key,
                "--callback-port",
                str(CALLBACK_PORT),
                "--slug",
                slug,
                "--callback-host",
                CALLBACK_HOST,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=stack.env,
            start_new_session=True,
        )
        log.close()
        stack.procs["loadgen"] = self.proc
        ready = self._read()
        if not ready.get("ready"):
            raise RuntimeError(f"load generator did not start: {ready}")

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None  # noqa: S101
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("load generator exited (see loadgen.log)")
        return json.loads(line)

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None  # noqa: S101
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        self.proc.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"load generator: {answer['error']}")
        return answer

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.call("run", spec=spec)

    def quit(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(RuntimeError, OSError):
                self.call("quit")
