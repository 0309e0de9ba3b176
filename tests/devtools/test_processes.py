"""The stack's processes are defined once (devtools/processes.py): `make run`, the benchmark
and the chaos suite start the same processes with the same fixed flags, and differ only in
what their layouts say (ports, log levels, node names, the benchmark's floor queue)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import stack as bench_stack
from bench.chaos import supervisor
from devtools import processes, stack
from devtools.processes import QUEUES, table

RUN = Path("run-dir")  # only named in the command lines, never created


def _tables() -> dict[str, dict[str, processes.Process]]:
    return {
        "make run": table(stack.layout(stack.gateway_in_use({}))),
        "bench": table(
            bench_stack.layout(logs=RUN / "logs", sandbox_latency_ms=20, sandbox_quota_rps=1000)
        ),
        "chaos": table(supervisor.layout(web_port=1, sandbox_port=2, sandbox_key="k", run_dir=RUN)),
    }


def test_every_user_starts_the_same_processes_in_the_same_order() -> None:
    # given / when
    names = {user: list(procs) for user, procs in _tables().items()}
    # then
    expected = ["sandbox", "gunicorn", "beat", *(f"worker-{q}" for q in QUEUES)]
    assert names["make run"] == expected
    assert names["chaos"] == expected
    assert names["bench"] == [*expected, f"worker-{bench_stack.FLOOR_QUEUE}"]


@pytest.mark.parametrize("user", ["make run", "bench", "chaos"])
def test_every_worker_is_one_process_with_prefetch_one_on_its_own_queue(user: str) -> None:
    # given
    procs = _tables()[user]
    workers = {name: p.argv for name, p in procs.items() if name.startswith("worker-")}
    # then
    for name, argv in workers.items():
        queue = name.removeprefix("worker-")
        assert argv[argv.index("-Q") + 1] == queue
        assert argv[argv.index("-c") + 1] == "1"
        assert argv[argv.index("-n") + 1].endswith(f"{queue}@%h")
        assert "--prefetch-multiplier=1" in argv
    gunicorn = procs["gunicorn"].argv
    assert gunicorn[gunicorn.index("-c") + 1] == str(processes.GUNICORN_CONF)


def test_make_run_gives_each_process_group_its_metrics_directory_and_each_worker_a_port() -> None:
    # given / when
    procs = table(stack.layout(stack.gateway_in_use({}), flower=True))
    # then
    assert {name: p.env["PROMETHEUS_MULTIPROC_DIR"] for name, p in procs.items()} == {
        name: str(stack.METRICS_DIR / name) for name in procs
    }
    ports = [int(p.env["WORKER_METRICS_PORT"]) for p in procs.values() if "-Q" in p.argv]
    assert ports == [stack.WORKER_METRICS_BASE_PORT + i for i in range(len(QUEUES))]
    assert procs["flower"].env["CELERY_BROKER_TRANSPORT"] == "redis"
    assert "WORKER_METRICS_PORT" not in procs["gunicorn"].env
