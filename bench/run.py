"""The campaign-burst benchmark: `python -m bench.run --mode quick|full` (make bench-quick,
make bench). Phases, in order, all against one stack started here:

1. floors: closed loop (32 connections) on the bare DRF GET and insert, and the drain rate
   of a Celery no-op task, on the same gunicorn and worker configuration as the product;
2. claims: open loop at a schedule of rates, then a closed-loop saturation probe;
3. intake: orders with the claimed (then seeded) coupons, open loop at a schedule of rates,
   then saturation; the pipeline's drain rate is measured as the backlog empties;
4. end to end: orders for pre-claimed customers at a fixed rate, statuses by callback; full
   mode first searches the highest rate whose backlog stays flat, then holds it 5 minutes;
5. overload: 2 x and 5 x the intake saturation; then the invariants, once all is terminal;
6. the scale probe (bench/scale.py).
Results: a table on stdout, bench/results/<mode>-<time>.json and .png (each run once; the
newest of a mode is the last name in sort order).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from bench import report, seed, stack
from bench.loadclient import LoadClient
from bench.measure import Sampler, WaitSampler, cpu_delta, slope, wait_for
from bench.plan import PLANS, Plan
from bench.roundtrips import RoundTrips
from bench.stack import ROOT, Stack

RESULTS = ROOT / "bench" / "results"
RUNS = ROOT / ".run" / "bench"
SATURATION_GUESS = 1500  # orders/s a closed-loop probe could reach at most, to size the pool


class Interrupted(Exception):
    """SIGTERM or SIGINT: stop the stack and leave."""


class Runner:
    """Drives the phases and keeps what they measured in `self.results`."""

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

    def spec(self, phase: str, kind: str, mode: str, steps: list[dict[str, float]]) -> dict:
        closed = mode == "closed"
        return {
            "phase": phase,
            "kind": kind,
            "mode": mode,
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

    # --- phases -------------------------------------------------------------------------------

    def floors(self) -> None:
        out: dict[str, Any] = {}
        for kind in ("floor_get", "floor_insert"):
            with self.phase(kind) as info:
                summary = self.load.run(
                    self.spec(kind, kind, "closed", [{"duration": self.plan.floor_seconds}])
                )
            step = summary["steps"][0]
            cpu = info["cpu_s"]
            step["gunicorn_cpu_ms_per_request"] = (
                cpu.get("gunicorn", 0) * 1000 / step["answered"] if step["answered"] else None
            )
            out[kind] = {**summary, "cpu_s": cpu}
            print(
                f"  {kind}: {step['answered_per_s']:.0f} req/s, p99 "
                f"{step['latency_ms']['p99']:.1f} ms",
                flush=True,
            )
        with self.phase("floor_noop") as info:
            out["noop"] = self.noop_drain()
        out["noop"]["cpu_s"] = info["cpu_s"]
        self.results["floors"] = out

    def noop_drain(self) -> dict[str, Any]:
        """Publish no-op tasks faster than one worker drains them, then time the drain of
        what is queued: tasks per second through one worker, prefetch 1, as configured."""
        from config.celery import app

        broker = redis.Redis.from_url(stack.BROKER_URL)
        count = self.plan.noop_tasks
        published = time.time()
        with app.producer_or_acquire() as producer:
            for _ in range(count):
                app.send_task("bench.noop", producer=producer)
        t0, cpu0 = self.sampler.snapshot()
        queued = broker.llen(stack.FLOOR_QUEUE)
        wait_for(lambda: broker.llen(stack.FLOOR_QUEUE) == 0, timeout=120, every=0.05)
        t1, cpu1 = self.sampler.snapshot()
        rate = queued / max(1e-3, t1 - t0)
        worker_cpu = cpu1.get("worker-bench", 0) - cpu0.get("worker-bench", 0)
        print(f"  noop: {rate:.0f} tasks/s drained ({queued} queued of {count})", flush=True)
        return {
            "published": count,
            "publish_seconds": t0 - published,
            "queued_at_start": queued,
            "drain_seconds": t1 - t0,
            "tasks_per_s": rate,
            "worker_cpu_ms_per_task": worker_cpu * 1000 / queued if queued else None,
        }

    def claims(self) -> None:
        """Saturation first, on an idle server; then the open-loop schedule (whose top rates
        may leave abandoned requests in gunicorn's listen queue: drain() waits them out)."""
        steps = [
            {"rate": r, "duration": self.plan.claim_step_seconds} for r in self.plan.claim_rates
        ]
        trips = RoundTrips(stack.DATABASE_URL, stack.REDIS_URL)
        trips.start()
        with self.phase("claims-saturation", self.plan.floor_seconds):
            saturation = self.load.run(
                self.spec(
                    "claims-saturation", "claims", "closed", [{"duration": self.plan.floor_seconds}]
                )
            )
        saturation["roundtrips"] = trips.stop(per=saturation["steps"][0]["accepted"])
        self.annotate_cpu(saturation)
        _print_steps(saturation)
        with self.phase("claims", sum(s["duration"] for s in steps)):
            schedule = self.load.run(self.spec("claims", "claims", "open", steps))
        self.annotate_cpu(schedule)
        _print_steps(schedule)
        with self.phase("drain-claims"):
            drained = self.drain("claims", self.plan.wait_claims)
        self.results["claims"] = {"schedule": schedule, "saturation": saturation, "drain": drained}

    def intake(self) -> None:
        """Saturation first, then the open-loop schedule, with the whole pipeline running as
        in production; then the pipeline drains what intake left and its rate is taken."""
        steps = [
            {"rate": r, "duration": self.plan.intake_step_seconds} for r in self.plan.intake_rates
        ]
        sat_steps = [{"duration": self.plan.floor_seconds}]
        self.ensure_pool(
            self.orders_needed(steps, "open") + self.orders_needed(sat_steps, "closed")
        )
        with self.phase("intake-saturation", self.plan.floor_seconds):
            saturation = self.load.run(
                self.spec("intake-saturation", "orders", "closed", sat_steps)
            )
        self.annotate_cpu(saturation)
        _print_steps(saturation)
        with self.phase("intake", sum(s["duration"] for s in steps)):
            schedule = self.load.run(self.spec("intake", "orders", "open", steps))
        self.annotate_cpu(schedule)
        _print_steps(schedule)
        self.order_phases += ["intake-saturation", "intake"]
        with self.phase("drain-intake"):
            drained = self.drain("intake", self.plan.wait_intake)
        self.results["intake"] = {"schedule": schedule, "saturation": saturation, "drain": drained}

    def e2e_run(self, name: str, rate: float, seconds: float) -> dict[str, Any]:
        """Orders at `rate` for `seconds`, then judge: did the backlog stay flat?"""
        steps = [{"rate": rate, "duration": seconds}]
        self.ensure_pool(self.orders_needed(steps, "open"))
        with self.phase(name, seconds) as info:
            summary = self.load.run(self.spec(name, "orders", "open", steps))
        self.order_phases.append(name)
        step = summary["steps"][0]
        start, end = step["t_start"], step["t_end"]
        window_start = start + 0.3 * seconds
        samples = self.sampler.backlog_between(window_start, end)
        order_slope = slope([(t, n) for t, n, _ in samples])
        callback_slope = slope([(t, c) for t, _, c in samples])
        counts = self.load.call("callback_counts", start=window_start, end=end)["counts"]
        window = end - window_start
        paid_per_s = counts.get("paid", 0) / window
        terminal_per_s = (
            sum(n for s, n in counts.items() if s not in ("reserved", "received")) / window
        )
        accepted_per_s = step["accepted_per_s"]
        allowed = max(200.0, accepted_per_s) / window  # less than 1 s of intake over the window
        clean = step["http_5xx"] == 0 and step["timeouts"] == 0 and step["not_sent"] == 0
        sustained = clean and order_slope <= allowed and callback_slope <= 2 * allowed
        cpu = info["cpu_s"]
        paid_total = self.load.call("callback_counts", start=start, end=end + 1)["counts"].get(
            "paid", 0
        )
        run = {
            "name": name,
            "rate": rate,
            "seconds": seconds,
            "summary": summary,
            "accepted_per_s": accepted_per_s,
            "paid_per_s": paid_per_s,
            "terminal_per_s": terminal_per_s,
            "backlog_slope_per_s": order_slope,
            "callback_backlog_slope_per_s": callback_slope,
            "backlog_allowed_slope_per_s": allowed,
            "backlog_end": samples[-1][1] if samples else None,
            "machine": self.sampler.machine_between(start, end),
            "sustained": sustained,
            "cpu_s": cpu,
            "paid_in_run": paid_total,
            "cpu_ms_per_paid_order": {
                k: v * 1000 / paid_total for k, v in cpu.items() if paid_total
            },
        }
        print(
            f"  {name} at {rate:.0f}/s: accepted {accepted_per_s:.0f}/s, paid {paid_per_s:.0f}/s,"
            f" backlog slope {order_slope:+.1f}/s, callbacks slope {callback_slope:+.1f}/s, "
            f"p99 {step['latency_ms']['p99'] or 0:.0f} ms -> "
            f"{'sustained' if sustained else 'NOT sustained'}",
            flush=True,
        )
        with self.phase(f"drain-{name}"):
            run["drain"] = self.drain(name, self.plan.wait_e2e)
        return run

    def e2e(self) -> None:
        intake = self.results["intake"]
        # What intake kept up with: saturation, or an open-loop step answered in full.
        kept_up = [
            s["accepted_per_s"]
            for s in intake["schedule"]["steps"]
            if s["accepted_per_s"] >= 0.9 * s["rate"] * (1 - self.plan.replay_share)
            and (s["latency_all_ms"]["p99"] or 0) < 2000  # noqa: PLR2004
        ]
        intake_cap = max([intake["saturation"]["steps"][0]["accepted_per_s"], *kept_up])
        drain_rate = intake["drain"]["orders_per_s"]
        intake_cap = max(intake_cap, 1.0)
        # Intake and pipeline share the two cores: each order costs both.
        estimate = 1 / (1 / intake_cap + 1 / drain_rate) if drain_rate else 0.9 * intake_cap
        rate = _round_rate(estimate)
        print(
            f"  estimate: intake saturates at {intake_cap:.0f}/s, the pipeline drains "
            f"{drain_rate or float('nan'):.0f}/s alone -> both on 2 cores ~ {estimate:.0f}/s",
            flush=True,
        )
        probes: list[dict[str, Any]] = []
        low, high = 0.0, math.inf
        tried: set[float] = set()
        for i in range(self.plan.e2e_probes):
            if rate in tried:  # the bracket closed on a rate already measured
                break
            tried.add(rate)
            run = self.e2e_run(f"e2e-probe-{i + 1}", rate, self.plan.e2e_probe_seconds)
            probes.append(run)
            if run["sustained"]:
                low = max(low, rate)
            else:
                high = min(high, rate)
            rate = (
                (low + high) / 2
                if high < math.inf and low > 0
                else (rate * 1.25 if run["sustained"] else rate / 1.25)
            )
            rate = _round_rate(rate)
        if not probes:
            # One run, no search (quick mode): start below the estimate, which assumes the
            # two cores are the only limit (locks and round trips make it optimistic).
            rate = _round_rate(0.75 * estimate)
        best = low if probes and low > 0 else rate
        main = self.e2e_run("e2e", best, self.plan.e2e_seconds)
        self.results["e2e"] = {
            "estimate": estimate,
            "intake_capacity": intake_cap,
            "pipeline_drain_rate": drain_rate,
            "probes": probes,
            "main": main,
        }

    def backlog(self) -> None:
        """A backlog built on purpose: 1.5 x the sustained rate for a while, then half of it
        until the line is empty. Were the waits promised at acceptance the waits the orders
        had, and did the line drain at the rate the estimates assumed?"""
        rate = self.results["e2e"]["main"]["rate"]
        seconds = self.plan.backlog_seconds
        steps = [
            {"rate": 1.5 * rate, "duration": seconds},
            {"rate": 0.5 * rate, "duration": seconds},
        ]
        self.ensure_pool(self.orders_needed(steps, "open"))
        with self.phase("backlog", 2 * seconds):
            summary = self.load.run(self.spec("backlog", "orders", "open", steps))
        self.order_phases.append("backlog")
        _print_steps(summary)
        with self.phase("drain-backlog"):
            drained = self.drain("backlog", self.plan.wait_e2e)
        self.results["backlog"] = {"rate": rate, "summary": summary, "drain": drained}

    def overload(self) -> None:
        """Open loop at 2 x and 5 x the measured intake saturation (pipeline running): the
        excess must be refused fast with 429, the rest served, nothing left waiting for ever.
        gunicorn's CPU is then split between accepted and refused requests by solving the two
        runs' figures (cpu = a * accepted + b * refused)."""
        sat = self.results["intake"]["saturation"]["steps"][0]["accepted_per_s"]
        runs: list[dict[str, Any]] = []
        for factor in self.plan.targets.overload_factors:
            rate = factor * max(sat, 1.0)
            name = f"overload-{factor:g}x"
            steps = [{"rate": rate, "duration": self.plan.overload_seconds}]
            self.ensure_pool(self.orders_needed(steps, "open"))
            with self.phase(name, self.plan.overload_seconds) as info:
                summary = self.load.run(self.spec(name, "orders", "open", steps))
            self.annotate_cpu(summary, per="answered")
            self.order_phases.append(name)
            _print_steps(summary)
            with self.phase(f"drain-{name}"):
                drained = self.drain(name, self.plan.wait_overload)
            step = summary["steps"][0]
            runs.append(
                {
                    "factor": factor,
                    "rate": rate,
                    "saturation": sat,
                    "goodput_vs_saturation": step["accepted_per_s"] / sat if sat else None,
                    "summary": summary,
                    "drain": drained,
                    "cpu_s": info["cpu_s"],
                }
            )
        last = runs[-1]
        self.results["overload"] = {
            "rate": last["rate"],
            "summary": last["summary"],
            "drain": last["drain"],
            "cpu_s": last["cpu_s"],
            "runs": runs,
            "gunicorn_cpu_ms": _split_cpu(runs),
        }

    def invariants(self) -> None:
        from django.db import connection, transaction

        from bench.invariants import check_invariants, listed, summarize

        ids_path = self.stack.logs.parent / "accepted-ids.txt"
        accepted = self.load.call("accepted_ids", phases=self.order_phases, path=str(ids_path))
        ids = [line for line in ids_path.read_text().splitlines() if line]
        fetched: dict[str, Any] = {}

        def ledger() -> dict[str, Any]:
            fetched.update(
                httpx.get(
                    f"{stack.SANDBOX_URL}/_sandbox/ledger", headers=stack.SANDBOX_AUTH, timeout=120
                ).json()
            )
            return fetched

        began = time.time()
        # One snapshot for every query; the ledger is read after it, so a charge recorded
        # by the time of the snapshot is in the ledger.
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            found = check_invariants(connection, ledger, ids)
        ledger_data = fetched
        self.results["invariants"] = {
            "accepted_orders": accepted["count"],
            "charges_in_ledger": len(ledger_data.get("charges", [])),
            "ledger_stats": ledger_data.get("stats"),
            "violations": summarize(found),
            "listed": listed(found),
            "seconds": time.time() - began,
        }
        self.results["orders"] = self.load.call("orders_report", phases=self.order_phases)
        print(
            f"  invariants over {accepted['count']} accepted orders, "
            f"{len(ledger_data.get('charges', []))} charges: "
            + ("all held" if not found else f"{len(found)} VIOLATIONS"),
            flush=True,
        )

    def scale(self) -> None:
        from bench.scale import run_scale_probe

        with self.phase("scale"):
            self.results["scale"] = run_scale_probe(
                plan=self.plan,
                stack=self.stack,
                load=self.load,
                sampler=self.sampler,
                fixtures=self.fixtures,
            )

    def run_all(self, skip: set[str]) -> None:
        phases = ("floors", "claims", "intake", "e2e", "backlog", "overload", "invariants", "scale")
        for name in phases:
            if name in skip:
                continue
            getattr(self, name)()


def _round_rate(rate: float) -> float:
    """Down to a round rate: steps of 5 below 100/s, of 10 above; at least 5/s."""
    step = 5 if rate < 100 else 10  # noqa: PLR2004
    return max(5.0, math.floor(rate / step) * step)


def _split_cpu(runs: list[dict[str, Any]]) -> dict[str, float | None]:
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


def _print_steps(summary: dict[str, Any]) -> None:
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


def machine() -> dict[str, Any]:
    import psutil

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {}
    for name in ("django", "djangorestframework", "celery", "gunicorn", "aiohttp", "psycopg"):
        with contextlib.suppress(Exception):
            out[name] = version(name)
    with contextlib.suppress(Exception):
        out["redis-server"] = redis.Redis.from_url(stack.REDIS_URL).info("server")["redis_version"]
    with contextlib.suppress(Exception):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            out["postgresql"] = cursor.fetchone()[0]
    return out


SAMPLE_FIELDS = ("t", "received", "reserved", "callbacks_pending", "queues", "accept_queue")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=sorted(PLANS), default="quick")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated phases to leave out while developing "
        "(floors,claims,intake,e2e,backlog,overload,invariants,scale); results are partial",
    )
    parser.add_argument(
        "--profile",
        default="",
        help="comma-separated phases to sample with py-spy (claims,intake,e2e,overload); "
        "py-spy costs CPU, so a profiled run's figures are not the benchmark's",
    )
    return parser.parse_args(argv)


@dataclass
class Session:
    """What one run started, so that `finally` can stop exactly that."""

    stack: Stack
    sampler: Sampler | None = None
    waits: WaitSampler | None = None
    load: LoadClient | None = None

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        if self.waits is not None:
            self.waits.stop()
        if self.load is not None:
            self.load.quit()
        self.stack.stop_all()


def start(session: Session, plan: Plan, args: argparse.Namespace, run_dir: Path) -> Runner:
    """Database, fixtures, the stack, the load generator and the samplers: a Runner."""
    began = time.time()
    stack.ports_free()
    seed.prepare_database(session.stack.env)
    seed.reset()
    fixtures = seed.create_fixtures()
    stack.start_stack(
        session.stack,
        sandbox_latency_ms=plan.sandbox_latency_ms,
        sandbox_quota_rps=plan.sandbox_quota_rps,
    )
    print(f"stack up in {time.time() - began:.1f} s", flush=True)
    session.load = LoadClient(session.stack, api_key=fixtures.api_key, slug=seed.MAIN_SLUG)
    session.sampler = Sampler(stack=session.stack, database_url=stack.DATABASE_URL)
    session.sampler.start()
    session.waits = WaitSampler(database_url=stack.DATABASE_URL)
    session.waits.start()
    runner = Runner(
        plan=plan,
        stk=session.stack,
        load=session.load,
        sampler=session.sampler,
        fixtures=fixtures,
    )
    runner.waits = session.waits
    if args.profile:
        runner.profile_phases = {p for p in args.profile.split(",") if p}
        runner.profile_dir = run_dir / "profile"
    return runner


def command() -> str:
    """How this run was started, with any port it was told to move (BENCH_*_PORT)."""
    moved = [f"{k}={os.environ[k]}" for k in stack.PORT_VARIABLES if k in os.environ]
    base = os.environ.get("BENCH_COMMAND") or " ".join(["python -m bench.run", *sys.argv[1:]])
    return " ".join([*moved, base])


def collect(
    runner: Runner, plan: Plan, *, began: float, skip: set[str], load_at_start: tuple
) -> dict[str, Any]:
    """Everything the report needs, in one JSON-able dict."""
    sampler, env = runner.sampler, runner.stack.env
    return {
        "mode": plan.mode,
        "command": command(),
        "started_at": datetime.fromtimestamp(began, UTC).isoformat(),
        "wall_seconds": time.time() - began,
        "skipped": sorted(skip),
        "plan": asdict(plan),
        "machine": machine(),
        "versions": versions(),
        "stack": {
            "gunicorn": f"{stack.GUNICORN_WORKERS} processes of "
            f"{os.environ.get('BENCH_WORKER_CLASS', 'config.server.ApiWorker')}, "
            f"{os.environ.get('WEB_THREADS', '4')} threads each, on {stack.WEB_URL} "
            "(config/gunicorn.conf.py)",
            "celery": "one worker per queue (-c 1, prefetch 1): "
            + ", ".join((*stack.PRODUCT_QUEUES, stack.FLOOR_QUEUE)),
            "beat": "one",
            "sandbox": f"latency {plan.sandbox_latency_ms} ms, quota "
            f"{plan.sandbox_quota_rps} requests/s",
            "env": {k: env[k] for k in stack.REPORTED_ENV if k in env},
        },
        **runner.results,
        "marks": runner.marks,
        "timeseries": runner.load.call("timeseries", since=began),
        "samples": [
            {
                **{k: r.get(k) for k in SAMPLE_FIELDS},
                # CPU seconds the machine spent outside this benchmark so far (cumulative).
                "others_cpu": r["machine_busy"] - sum(r["cpu"].values()),
            }
            for r in sampler.rows
        ],
        "peak_rss": sampler.peaks(),
        "machine_load": {
            "loadavg_at_start": load_at_start,
            **sampler.machine_between(began, time.time()),
        },
        "loadgen": runner.load.call("cpu"),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = PLANS[args.mode]
    skip = {s for s in args.skip.split(",") if s}
    began = time.time()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = RUNS / f"{plan.mode}-{stamp}"
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = stack.stack_env(sandbox_quota_rps=plan.sandbox_quota_rps)
    os.environ.update(env)  # this process's own Django uses the stack's settings

    def interrupted(signum: int, frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    load_at_start = os.getloadavg()
    print(
        f"campaign-burst benchmark, {plan.mode} mode; logs in {logs}; load average "
        f"{load_at_start[0]:.1f} at start",
        flush=True,
    )
    session = Session(stack=Stack(logs=logs, env=env))
    try:
        runner = start(session, plan, args, run_dir)
        runner.run_all(skip)
        results = collect(runner, plan, began=began, skip=skip, load_at_start=load_at_start)
    except Interrupted as exc:
        print(f"interrupted ({exc}); stopping the stack", flush=True)
        return 130
    except stack.PortBusyError as exc:
        print(f"cannot start: {exc}", flush=True)
        return 2
    finally:
        session.close()
    results["wall_seconds"] = time.time() - began
    paths = report.write(results, RESULTS, stamp)
    print(report.render(results))
    print(f"\nwritten: {', '.join(str(p.relative_to(ROOT)) for p in paths)}")
    print(f"wall time: {results['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
