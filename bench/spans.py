"""A span of code that bench.instructions counts: the one thing a measured process needs
from it, in a module of its own (bench.stage_costs and the web child both mark spans)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Where a measured process writes the label of each span it measures, one JSON line each
LABELS_ENV = "BENCH_INSTRUCTIONS_LABELS"


@contextmanager
def measured(label: str, count: int) -> Iterator[None]:
    """Count the instructions of the block as `label`, per `count`, when run under
    bench.instructions' callgrind (nothing otherwise). callgrind zeroes its counters on
    entering the C library's sched_yield and writes them out on entering getloadavg: neither
    is called by anything else the measured code runs."""
    labels = os.environ.get(LABELS_ENV)
    if not labels:
        yield
        return
    with Path(labels).open("a") as out:
        out.write(json.dumps({"label": label, "count": count}) + "\n")
    os.sched_yield()
    try:
        yield
    finally:
        os.getloadavg()
