"""The chaos suite's short form runs in the background while the rest of the suite runs.

It is one subprocess of about two and a half minutes, mostly waiting (a burst of shoppers per
scenario, then recovery), on engines of its own. Started once collection is done and judged
last, it overlaps the other tests instead of adding its wall time to theirs. Run alone
(`pytest tests/chaos`), it simply starts and is waited for."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.stack import PROJECT_ROOT

LOG = PROJECT_ROOT / ".run" / "test-logs" / "chaos-short.log"
RESULTS = LOG.with_suffix(".json")
TIMEOUT = 1200  # seconds from its start; the run itself takes 2-4 minutes


class ChaosRun:
    """The background `python -m bench.chaos --mode short`, writing RESULTS and LOG."""

    def __init__(self) -> None:
        RESULTS.unlink(missing_ok=True)  # an earlier run's results must not pass for these
        LOG.parent.mkdir(parents=True, exist_ok=True)
        self._log = LOG.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.chaos", "--mode", "short", "--json", str(RESULTS)],
            cwd=PROJECT_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C at the terminal reaches pytest only, and stop() sends
            # the one SIGINT (a second would cut short the run's clean-up of its stack).
            start_new_session=True,
        )

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=TIMEOUT)
        finally:
            self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            # Ctrl-C's signal: bench.chaos stops its stack and engines in its `finally`.
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()


_KEY = pytest.StashKey[ChaosRun]()


def _is_chaos(item: pytest.Item) -> bool:
    return item.get_closest_marker("chaos") is not None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The chaos tests go last, so that the tests before them run while it does."""
    items.sort(key=_is_chaos)  # stable: every other test keeps its order


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(_is_chaos(item) for item in session.items) and not session.config.option.collectonly:
        session.config.stash[_KEY] = ChaosRun()


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(_KEY, None)
    if run is not None:
        run.stop()


def chaos_run(config: pytest.Config) -> ChaosRun:
    return config.stash[_KEY]
