"""The benchmark's phases, in order (bench/run.py's docstring names them); each measures one
thing on the running stack and stores it in `self.results`."""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import redis

from bench import stack
from bench.harness import (
    Harness,
    print_steps,
    round_rate,
    split_cpu,
)
from bench.measure import slope, wait_for
from bench.roundtrips import RoundTrips

# In the order they run; a later phase may start from an earlier one's result
# (bench.run.skip_problem says which).
PHASES = ("floors", "claims", "intake", "e2e", "backlog", "overload", "invariants", "scale")


class Runner(Harness):
    """Drives the phases and keeps what they measured in `self.results`."""

    # --- phases -------------------------------------------------------------------------------

    def floors(self) -> None:
        """The bare GET and insert, sent as the product's phases send (kept-alive connections
        with --keepalive), so that their ratios to the floors compare like with like; with
        --keepalive, also over a new connection per request (`*_per_connection`), the worst
        case the overload phases send."""
        out: dict[str, Any] = {}
        ways = [("floor_get", False), ("floor_insert", False)]
        if self.keepalive:
            ways += [("floor_get", True), ("floor_insert", True)]
        for kind, per_connection in ways:
            name = f"{kind}_per_connection" if per_connection else kind
            with self.phase(name) as info:
                summary = self.load.run(
                    self.spec(
                        name,
                        kind,
                        "closed",
                        [{"duration": self.plan.floor_seconds}],
                        per_connection=per_connection,
                    )
                )
            step = summary["steps"][0]
            cpu = info["cpu_s"]
            step["gunicorn_cpu_ms_per_request"] = (
                cpu.get("gunicorn", 0) * 1000 / step["answered"] if step["answered"] else None
            )
            out[name] = {**summary, "cpu_s": cpu}
            print(
                f"  {name}: {step['answered_per_s']:.0f} req/s, p99 "
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
        print_steps(saturation)
        with self.phase("claims", sum(s["duration"] for s in steps)):
            schedule = self.load.run(self.spec("claims", "claims", "open", steps))
        self.annotate_cpu(schedule)
        print_steps(schedule)
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
        print_steps(saturation)
        with self.phase("intake", sum(s["duration"] for s in steps)):
            schedule = self.load.run(self.spec("intake", "orders", "open", steps))
        self.annotate_cpu(schedule)
        print_steps(schedule)
        self.order_phases += ["intake-saturation", "intake"]
        with self.phase("drain-intake"):
            drained = self.drain("intake", self.plan.wait_intake)
        self.results["intake"] = {"schedule": schedule, "saturation": saturation, "drain": drained}

    def e2e_run(self, name: str, rate: float, seconds: float) -> dict[str, Any]:
        """Orders at `rate` for `seconds`, then judge: was the rate taken in (at least 90 % of
        the new orders accepted, as intake's steps are judged: a run that refuses much of
        its load is shedding it, not sustaining it) and did the backlog stay flat?"""
        steps = [{"rate": rate, "duration": seconds}]
        self.ensure_pool(self.orders_needed(steps, "open"))
        trips = RoundTrips(stack.DATABASE_URL, stack.REDIS_URL)
        trips.start()
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
        taken_in = accepted_per_s >= 0.9 * rate * (1 - self.plan.replay_share)
        sustained = clean and taken_in and order_slope <= allowed and callback_slope <= 2 * allowed
        cpu = info["cpu_s"]
        paid_total = self.load.call("callback_counts", start=start, end=end + 1)["counts"].get(
            "paid", 0
        )
        roundtrips = trips.stop(per=paid_total)  # the orders paid in the run, and their work
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
            "taken_in": taken_in,
            "sustained": sustained,
            "cpu_s": cpu,
            "paid_in_run": paid_total,
            "cpu_ms_per_paid_order": {
                k: v * 1000 / paid_total for k, v in cpu.items() if paid_total
            },
            "roundtrips": roundtrips,
        }
        print(
            f"  {name} at {rate:.0f}/s: accepted {accepted_per_s:.0f}/s, paid {paid_per_s:.0f}/s,"
            f" backlog slope {order_slope:+.1f}/s, callbacks slope {callback_slope:+.1f}/s, "
            f"p99 {step['latency_ms']['p99'] or 0:.0f} ms -> "
            f"{'sustained' if sustained else 'NOT sustained'}"
            f"{'' if taken_in else ' (over a tenth of the new orders refused)'}",
            flush=True,
        )
        with self.phase(f"drain-{name}"):
            run["drain"] = self.drain(name, self.plan.wait_e2e)
        return run

    def e2e(self) -> None:
        intake = self.results.get("intake")  # skipped only with --e2e-rate (bench.run)
        estimate = intake_cap = drain_rate = None
        rate = self.e2e_rate
        if intake is not None:
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
            rate = round_rate(estimate)
            print(
                f"  estimate: intake saturates at {intake_cap:.0f}/s, the pipeline drains "
                f"{drain_rate or float('nan'):.0f}/s alone -> both on 2 cores ~ {estimate:.0f}/s",
                flush=True,
            )
        probes: list[dict[str, Any]] = []
        low, high = 0.0, math.inf
        tried: set[float] = set()
        for i in range(0 if self.e2e_rate else self.plan.e2e_probes):
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
            rate = round_rate(rate)
        if not probes and estimate is not None:
            # One run, no search (quick mode): start below the estimate, which assumes the
            # two cores are the only limit (locks and round trips make it optimistic).
            rate = round_rate(0.75 * estimate)
        # The 5-minute run meets what a 40 s probe does not (autovacuum, tables growing):
        # it runs a step below the best probe, so that it measures a rate that holds.
        best = round_rate(0.95 * low) if probes and low > 0 else rate
        if self.e2e_rate:  # told the rate (--e2e-rate): two versions compared at one load
            best = self.e2e_rate
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
        e2e = self.results.get("e2e")  # skipped only with --e2e-rate (bench.run)
        rate = e2e["main"]["rate"] if e2e else self.e2e_rate
        seconds = self.plan.backlog_seconds
        steps = [
            {"rate": 1.5 * rate, "duration": seconds},
            {"rate": 0.5 * rate, "duration": seconds},
        ]
        self.ensure_pool(self.orders_needed(steps, "open"))
        with self.phase("backlog", 2 * seconds):
            summary = self.load.run(self.spec("backlog", "orders", "open", steps))
        self.order_phases.append("backlog")
        print_steps(summary)
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
                # The flood's worst case: a new connection per request, as a crowd of
                # clients (or a pool reconnecting after errors) sends.
                summary = self.load.run(
                    self.spec(name, "orders", "open", steps, per_connection=True)
                )
            self.annotate_cpu(summary, per="answered")
            self.order_phases.append(name)
            print_steps(summary)
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
            "gunicorn_cpu_ms": split_cpu(runs),
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
                keepalive=self.keepalive,
            )

    def run_all(self, skip: set[str]) -> None:
        for name in PHASES:
            if name in skip:
                continue
            getattr(self, name)()
