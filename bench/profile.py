"""Where the time goes: `--profile` samples the stack's Python processes with py-spy during
chosen phases and summarizes the stacks by package and by function.

py-spy (`pip install py-spy`; not a dependency of the benchmark) attaches to running
processes from outside, so the code under test is unchanged; it costs CPU on the same two
cores, so a profiled run's rates are not the benchmark's figures.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.stack import Stack

PYSPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
PROFILED = ("gunicorn", "worker-reservations", "worker-payments", "worker-callbacks")
# Where a frame's file lives says which layer the time belongs to.
LAYERS = (
    ("orders/", "product: orders"),
    ("coupons/", "product: coupons"),
    ("shop/", "product: shop"),
    ("config/", "product: config"),
    ("rest_framework/", "DRF"),
    ("drf_spectacular/", "DRF"),
    ("django/db/", "Django ORM"),
    ("django/", "Django (request, middleware, other)"),
    ("psycopg", "psycopg"),
    ("redis/", "redis-py"),
    ("kombu/", "kombu"),
    ("celery/", "celery"),
    ("billiard/", "celery"),
    ("httpx/", "httpx"),
    ("httpcore/", "httpx"),
    ("h11/", "httpx"),
    ("gunicorn/", "gunicorn"),
    ("json/", "json"),
    ("logging/", "logging"),
    ("ssl", "ssl"),
    ("socket", "sockets"),
    ("selectors", "sockets"),
    ("threading", "threads (idle wait)"),
    ("concurrent/", "threads (idle wait)"),
)


@dataclass
class Profiler:
    stack: Stack
    out: Path
    rate: int = 100
    procs: list[tuple[str, int, subprocess.Popen[bytes]]] = field(default_factory=list)

    @staticmethod
    def available() -> bool:
        return Path(PYSPY).exists()

    def start(self, phase: str, seconds: float) -> None:
        """Record every Python process of the profiled kinds for `seconds`."""
        self.out.mkdir(parents=True, exist_ok=True)
        for name in PROFILED:
            popen = self.stack.procs.get(name)
            if popen is None:
                continue
            root = psutil.Process(popen.pid)
            children = [c.pid for c in root.children(recursive=True)]
            # gunicorn's master only supervises; a Celery worker's parent consumes the broker.
            pids = children if name == "gunicorn" else [root.pid, *children]
            for pid in pids:
                path = self.out / f"{phase}-{name}-{pid}.txt"
                cmd = [PYSPY, "record", "--pid", str(pid), "--rate", str(self.rate)]
                cmd += ["--duration", str(int(seconds)), "--format", "raw", "--nonblocking"]
                cmd += ["--output", str(path)]
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.procs.append((name, pid, proc))

    def finish(self) -> None:
        for _, _, proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


def _layer(frame: str) -> str:
    for needle, layer in LAYERS:
        if needle in frame:
            return layer
    return "other"


def summarize(paths: list[Path], top: int = 12) -> dict[str, object]:
    """Samples by layer (of the innermost frame: self time) and the busiest functions, over
    py-spy's raw (collapsed) output files (py-spy leaves idle threads out by default)."""
    by_layer: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    by_product_function: Counter[str] = Counter()
    total = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            leaf = frames[-1]
            total += count
            by_layer[_layer(leaf)] += count
            by_function[leaf.split(" (")[0] + " (" + _layer(leaf) + ")"] += count
            product = next(
                (
                    f
                    for f in reversed(frames)
                    if any(p in f for p in ("orders/", "coupons/", "shop/", "config/"))
                ),
                None,
            )
            if product:
                by_product_function[product] += count
    share = {k: round(v / total, 3) for k, v in by_layer.most_common()} if total else {}
    return {
        "samples": total,
        "self_time_by_layer": share,
        "top_functions": [[k, round(v / total, 3)] for k, v in by_function.most_common(top)],
        "product_frames": [
            [k, round(v / total, 3)] for k, v in by_product_function.most_common(top)
        ],
    }
