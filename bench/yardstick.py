"""The machine's speed, as a control for the long soak (docs/soak.md): a fixed piece of pure
Python work (dicts, strings, sorting, JSON: what the stack's processes spend their CPU on) whose
CPU time is taken every few seconds during the run. The work never changes, so when its CPU
time grows, the machine did the same work more slowly (other tenants, caches, clock), and
every process's CPU per order is expected to grow by as much without any of it being ours.

`measure()` runs the work ROUNDS times and returns the median CPU time of one, in ms: the
typical round, as the stack's processes run typical requests on the same busy cores.
"""

from __future__ import annotations

import json
import time

ROUNDS = 3


def _work() -> int:
    counts: dict[str, int] = {}
    for i in range(12_000):
        key = f"customer-{i % 997}"
        counts[key] = counts.get(key, 0) + i
    words = sorted(str(i * 7_919 % 10_007) for i in range(4_000))
    doc = json.dumps({"counts": counts, "words": words[:500]})
    return len(json.loads(doc)["counts"]) + len(words)


def measure(rounds: int = ROUNDS) -> float:
    """The median thread CPU time of `rounds` runs of the fixed work, in ms."""
    times = []
    for _ in range(rounds):
        began = time.thread_time()
        _work()
        times.append(time.thread_time() - began)
    return round(sorted(times)[len(times) // 2] * 1000, 3)
