"""One cluster (devtools/cluster.py, docs/cluster.md) for the module: two hosts in network
namespaces behind HAProxy, PgBouncer before a private PostgreSQL, the state and broker Redis
and the sandbox gateway, on the pipeline's short clocks so that recovery fits in a test.
CLUSTER_TEST_PORT picks its HAProxy port (and so its names and subnet); else a free one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from bench.chaos import run as chaos_run
from devtools.cluster import Cluster
from tests.stack import PROJECT_ROOT, free_port

# The chaos suite's clocks (bench/chaos/run.py), so that recovery fits in a test.
CLOCKS = {
    **chaos_run.CLOCKS,
    "DEBUG": "false",
    "LOG_REQUESTS": "false",
    "RATE_LIMIT_CACHE_SECONDS": "0.2",
}
SHOPPERS = {"host_loss": 120, "rolling": 200, "limits": 100, "callbacks": 16}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    port = int(os.environ.get("CLUSTER_TEST_PORT") or free_port())
    run_dir = PROJECT_ROOT / ".run" / "test-cluster" / str(port)
    made = Cluster(hosts=2, port=port, run_dir=run_dir, env=CLOCKS, sandbox_latency_ms=20)
    try:
        made.start()
        yield made
    finally:
        made.stop()


@pytest.fixture(scope="module")
def fixtures(cluster: Cluster) -> dict[str, Any]:
    """The chaos suite's campaigns (bench/chaos/seed.py), one per test, seeded through the
    cluster's PgBouncer."""
    seeded = subprocess.run(
        [sys.executable, "-m", "bench.chaos.seed", json.dumps({"scenarios": SHOPPERS})],
        cwd=PROJECT_ROOT,
        env=cluster.env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(seeded.stdout)
