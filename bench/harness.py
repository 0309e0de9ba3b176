"""How a benchmark phase is run and measured: the harness the phases (bench/phases.py) use.
It marks each phase's time window, profiles it on demand, keeps the pool of pre-claimed
coupons full, reads CPU per process kind between two times, and drains the pipeline."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import seed, stack
from bench.loadclient import LoadClient
from bench.measure import Sampler, WaitSampler, cpu_delta, wait_for
from bench.plan import Plan
from bench.stack import Stack

SATURATION_GUESS = 1500  # orders/s a closed-loop probe could reach at most, to size the pool


class Interrupted(Exception):
    """SIGTERM or SIGINT: stop the stack and leave."""


class Harness:
    """Runs the phases (bench/phases.py `Runner`) and keeps what they measured in
    `self.results`."""

    def __init__(
        self,
        *,
        plan: Plan,
        stk: Stack,
        load: LoadClient,
        sampler: Sampler,
        fixtures: seed.Fixtures,
    ) -> None:
        self.plan = plan
        self.stack = stk
        self.load = load
        self.sampler = sampler
        self.fixtures = fixtures
        self.next_seed = 1
        self.marks: list[dict[str, Any]] = []
        self.results: dict[str, Any] = {}
        self.order_phases: list[str] = []
        self.profile_phases: set[str] = set()
        self.e2e_rate: float | None = None  # --e2e-rate: no search, this offered rate
        self.keepalive = 0  # --keepalive: the pool's kept-alive connections; 0, one per request
        self.waits: WaitSampler | None = None
        self.profile_dir: Path | None = None

    # --- helpers ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def phase(self, name: str, seconds: float | None = None) -> Iterator[dict[str, Any]]:
        """Mark a phase on the timeline and measure each process kind's CPU during it; with
        --profile naming it, sample the stack's Python processes for its `seconds`."""
        print(f"- {name}", flush=True)
        profiler = None
        if self.profile_dir is not None and name in self.profile_phases and seconds:
            from bench.profile import Profiler

            profiler = Profiler(stack=self.stack, out=self.profile_dir)
            profiler.start(name, seconds)
        t0, cpu0 = self.sampler.snapshot()
        info: dict[str, Any] = {"name": name, "start": t0}
        try:
            yield info
        finally:
            self.stack.check_alive()
            t1, cpu1 = self.sampler.snapshot()
            info.update(end=t1, cpu_s=cpu_delta(cpu0, cpu1))
            self.marks.append({"name": name, "start": t0, "end": t1})
            if self.waits is not None and not name.startswith("drain"):
                self.results.setdefault("db_waits", {})[name] = self.waits.summary(t0, t1)
            if profiler is not None:
                profiler.finish()
                self.collect_profile(name)

    def collect_profile(self, phase: str) -> None:
        from bench.profile import PROFILED, summarize

        assert self.profile_dir is not None  # noqa: S101
        out = self.results.setdefault("profile", {})
        for kind in PROFILED:
            paths = sorted(self.profile_dir.glob(f"{phase}-{kind}-*.txt"))
            if paths:
                out[f"{phase}/{kind}"] = summarize(paths)

    def spec(
        self,
        phase: str,
        kind: str,
        mode: str,
        steps: list[dict[str, float]],
        *,
        per_connection: bool = False,
    ) -> dict:
        """What the load generator runs. It sends over `self.keepalive` kept-alive connections
        (--keepalive), or over a new connection per request when that is 0 or
        `per_connection` asks for the worst case (the overload phases' flood)."""
        closed = mode == "closed"
        return {
            "phase": phase,
            "kind": kind,
            "mode": mode,
            "keepalive": 0 if per_connection else self.keepalive,
            "steps": steps,
            "connections": self.plan.closed_connections if closed else self.plan.connections,
            "timeout": self.plan.request_timeout,
            "replay_share": 0 if kind.startswith("floor") else self.plan.replay_share,
            "decline_every": self.plan.decline_every,
            "skus": list(seed.SKUS),
        }

    def ensure_pool(self, orders: int) -> None:
        """Enough customers holding an unused coupon for `orders` new orders: those claimed
        over HTTP first, then coupons seeded in the database (bench/seed.py)."""
        have = self.load.call("pool")["pool"]
        if have >= orders:
            return
        count = orders - have + 1000
        seed.seed_coupons(
            campaign_id=self.fixtures.campaign_id,
            client_id=self.fixtures.client_id,
            start=self.next_seed,
            count=count,
            decline_every=self.plan.decline_every,
        )
        self.load.call(
            "add_seeded", start=self.next_seed, count=count, decline_every=self.plan.decline_every
        )
        self.next_seed += count
        self.results.setdefault("coupons_seeded", 0)
        self.results["coupons_seeded"] += count

    def orders_needed(self, steps: list[dict[str, float]], mode: str) -> int:
        rate = SATURATION_GUESS if mode == "closed" else None
        total = sum((rate or s["rate"]) * s["duration"] for s in steps)
        return int(total * (1 - self.plan.replay_share)) + 500

    def cpu_between(self, start: float, end: float) -> dict[str, float]:
        rows = [r for r in self.sampler.rows if start - 1.5 <= r["t"] <= end + 1.5]
        if len(rows) < 2:  # noqa: PLR2004
            return {}
        first = min(rows, key=lambda r: abs(r["t"] - start))
        last = min(rows, key=lambda r: abs(r["t"] - end))
        return cpu_delta(first["cpu"], last["cpu"])

    def annotate_cpu(self, summary: dict[str, Any], per: str = "accepted") -> None:
        """gunicorn's CPU per accepted (or answered) request, for each step."""
        for step in summary["steps"]:
            cpu = self.cpu_between(step["t_start"], step["t_end"] + 0.5)
            count = step[per] or step["answered"]
            step["cpu_s"] = cpu
            step["gunicorn_cpu_ms_per_request"] = (
                cpu.get("gunicorn", 0.0) * 1000 / count if count else None
            )

    def live(self) -> tuple[int, int]:
        """(orders received or reserved, callbacks pending) in the database now."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM orders_order WHERE status IN ('received', 'reserved')"
                " AND campaign_id = %s",
                [self.fixtures.campaign_id],
            )
            (orders,) = cursor.fetchone()
            cursor.execute("SELECT count(*) FROM orders_callbackdelivery WHERE state = 'pending'")
            (callbacks,) = cursor.fetchone()
        return orders, callbacks

    def gunicorn_busy(self, seconds: float = 0.5) -> float:
        """Share of one core gunicorn used over the last `seconds`."""
        t0, cpu0 = self.sampler.snapshot()
        time.sleep(seconds)
        t1, cpu1 = self.sampler.snapshot()
        return (cpu1.get("gunicorn", 0) - cpu0.get("gunicorn", 0)) / max(1e-3, t1 - t0)

    def drain(self, label: str, cap: float) -> dict[str, Any]:
        """Wait, at most `cap` seconds, until the burst's orders are all terminal, every
        callback is sent, and gunicorn is idle. Requests whose client gave up still sit in
        gunicorn's listen queue and would be served anyway (a sync worker cannot know): if
        any are queued, gunicorn is restarted first, so that their work neither lands in the
        next phase nor takes minutes; how many there were is reported. The pipeline's drain
        rate is the backlog's fall per second; what was still left at the cap is reported."""
        began = time.time()
        start_orders, start_callbacks = self.live()
        points: list[tuple[float, int]] = [(began, start_orders)]
        state = {"idle": False}
        queued = stack.accept_queue() or 0
        restarted = False
        if queued or self.gunicorn_busy() > 0.2:  # noqa: PLR2004
            # Every request of the phase is answered or given up by now: what gunicorn still
            # has queued, nobody waits for. Serving it would take minutes at the rates that
            # left it; a restart drops it (reported) and the next phase starts clean.
            self.stack.restart_gunicorn()
            restarted = True
            print(f"  restarted gunicorn: {queued} abandoned connections were queued", flush=True)

        def quiet() -> bool:
            orders, callbacks = self.live()
            points.append((time.time(), orders))
            self.stack.check_alive()
            if orders or callbacks:
                return False
            state["idle"] = self.gunicorn_busy() < 0.05  # noqa: PLR2004
            return state["idle"]

        done = wait_for(quiet, timeout=cap, every=0.5)
        took = time.time() - began
        orders_left, callbacks_left = self.live()
        rate = None
        if start_orders >= 1000:  # noqa: PLR2004
            # From the start until the backlog fell below 2 % of where it began.
            below = next((t for t, n in points if n <= start_orders * 0.02), points[-1][0])
            rate = (start_orders - min(n for _, n in points)) / max(0.5, below - began)
        print(
            f"  after {label}: {start_orders} orders and {start_callbacks} callbacks waited; "
            f"quiet after {took:.1f} s"
            + (f" (drained {rate:.0f} orders/s)" if rate else "")
            + (
                ""
                if done
                else f"; NOT quiet at the {cap:.0f} s cap: {orders_left} orders, "
                f"{callbacks_left} callbacks left, gunicorn "
                + ("idle" if state["idle"] else "still busy")
            ),
            flush=True,
        )
        return {
            "label": label,
            "drained": done,
            "seconds": took,
            "cap": cap,
            "orders_at_start": start_orders,
            "callbacks_at_start": start_callbacks,
            "orders_left": orders_left,
            "callbacks_left": callbacks_left,
            "gunicorn_idle": state["idle"],
            "abandoned_in_accept_queue": queued,
            "gunicorn_restarted": restarted,
            "orders_per_s": rate,
        }


def round_rate(rate: float) -> float:
    """Down to a round rate: steps of 5 below 100/s, of 10 above; at least 5/s."""
    step = 5 if rate < 100 else 10  # noqa: PLR2004
    return max(5.0, math.floor(rate / step) * step)


def split_cpu(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """gunicorn CPU ms per accepted and per refused request, from two overload runs whose
    mix differs: solve cpu_i = a * accepted_i + b * refused_i."""
    if len(runs) < 2:  # noqa: PLR2004
        return {"per_accepted": None, "per_refused": None}
    rows = []
    for run in runs[:2]:
        step = run["summary"]["steps"][0]
        rows.append((step["accepted"], step["http_429"], run["cpu_s"].get("gunicorn", 0.0)))
    (a1, r1, c1), (a2, r2, c2) = rows
    det = a1 * r2 - a2 * r1
    if not det:
        return {"per_accepted": None, "per_refused": None}
    per_accepted = (c1 * r2 - c2 * r1) / det
    per_refused = (a1 * c2 - a2 * c1) / det
    return {"per_accepted": per_accepted * 1000, "per_refused": per_refused * 1000}


def print_steps(summary: dict[str, Any]) -> None:
    for step in summary["steps"]:
        lat = step["latency_ms"]
        print(
            f"  {summary['phase']}"
            + (f" @{step['rate']:.0f}/s" if step.get("rate") else " (closed)")
            + f": accepted {step['accepted_per_s']:.0f}/s, p50 {lat['p50'] or 0:.0f} ms, "
            f"p99 {lat['p99'] or 0:.0f} ms, 5xx {step['http_5xx']}, 429 {step['http_429']}, "
            f"timeouts {step['timeouts']}, not sent {step['not_sent']}",
            flush=True,
        )
