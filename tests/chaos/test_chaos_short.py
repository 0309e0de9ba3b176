"""The chaos suite's short form (bench/chaos, docs/reliability.md), run by `make test`: the
real stack on a private PostgreSQL and Redis, a burst of shoppers through the API in each of
nine fault scenarios, then every invariant checked against the database, the gateway's
ledger and what the shoppers were told. About two and a half minutes on two cores.

The run happens once, in a process of its own (it must not share this process's Django
setup or database), started in the background once the tests are collected and judged
after every other test (conftest.py). Each scenario is then judged as a test of its own,
including that its faults really happened, so that a scenario that broke nothing cannot
pass for one that survived everything."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.chaos.faults import SCENARIOS
from tests.chaos.conftest import LOG, RESULTS, chaos_run

pytestmark = pytest.mark.chaos

# What each scenario must have done to count: an action of the fault named here at least
# this often (bench/chaos/faults.py words them).
MUST_HAVE_DONE = {
    "worker_kill": [("SIGKILL worker parent", 1), ("SIGKILL worker pool process", 1)],
    "redis_restart": [("Redis SIGKILLed and restarted empty", 2)],
    "postgres": [("PostgreSQL crash-restarted", 1), ("pg_terminate_backend x", 2)],
    "gateway_faults": [("gateway: 5xx after charge, drops, time-outs, 429 quota", 1)],
    "gateway_down": [("gateway down for", 1)],
    "rolling_restart": [("SIGTERM gunicorn worker", 1), ("SIGTERM worker", 2)],
    "poison_time_limit": [("poison messages", 4), ("product rows locked", 1)],
    "duplicates": [("visibility-timeout restore pass", 10)],
    "all_together": [("Redis SIGKILLed", 1), ("PostgreSQL crash-restarted", 1)],
}
BROKEN_PROMISES = (
    "lost",
    "oversold",
    "over_budget",
    "double_charges",
    "server_errors",
    "broken",
    "unanswered",
)


@pytest.fixture(scope="module")
def chaos(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    run = chaos_run(request.config)  # started in the background (conftest.py)
    code = run.wait()
    if not RESULTS.exists():
        pytest.fail(f"the chaos run ended ({code}) without results; see {LOG}")
    return {row["scenario"]: row for row in json.loads(RESULTS.read_text())["rows"]}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenario_keeps_every_promise(chaos: dict[str, dict[str, Any]], scenario: str) -> None:
    row = chaos[scenario]
    for prefix, times in MUST_HAVE_DONE[scenario]:
        done = sum(n for what, n in row["faults"].items() if what.startswith(prefix))
        assert done >= times, f"{scenario}: {prefix!r} happened {done}x: {row['fault_log']}"
    assert row["accepted"] >= 75, f"too few orders to judge: {row['shoppers']}"
    found = {key: row[key] for key in BROKEN_PROMISES}
    assert found == dict.fromkeys(found, 0), (found, row["violations"][:10], row["shoppers"])
    assert row["terminal"] == row["accepted"]
    assert row["recover_seconds"] is not None, f"not quiet within the time-out; see {LOG}"
    assert row["passed"]


def test_duplicates_were_really_delivered_twice(chaos: dict[str, dict[str, Any]]) -> None:
    assert chaos["duplicates"]["redelivered"] > 0, chaos["duplicates"]["fault_log"]
