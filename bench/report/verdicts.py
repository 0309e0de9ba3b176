"""The benchmark's targets: each measured figure held against its target, with pass, fail
and by how much (written into the results JSON as `targets`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

R = dict[str, Any]

# The process kinds that are the product: what "CPU per paid order across our processes"
# adds up. The load generator, the sandbox gateway, the benchmark's orchestrator and its
# no-op worker are the harness.
OUR_KINDS = frozenset(
    {
        "gunicorn",
        "postgres",
        "postgres-shared",
        "redis",
        "beat",
        "worker-reservations",
        "worker-payments",
        "worker-callbacks",
        "worker-maintenance",
    }
)
HARNESS_KINDS = frozenset({"loadgen", "sandbox"})


@dataclass(frozen=True)
class Verdict:
    name: str
    measured: float | None
    target: float
    unit: str
    at_least: bool  # True: measured >= target passes; False: measured < target passes
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured >= self.target if self.at_least else self.measured < self.target

    @property
    def gap(self) -> str:
        if self.measured is None:
            return "not measured"
        if self.passed:
            return "met"
        if self.at_least:
            short = (self.target - self.measured) / self.target * 100
            factor = f", {self.target / self.measured:.1f}x below" if self.measured > 0 else ""
            return f"short by {short:.0f} %{factor}"
        over = (self.measured - self.target) / self.target * 100 if self.target else float("inf")
        return f"over by {over:.0f} %"

    def as_dict(self) -> R:
        return {
            "name": self.name,
            "measured": self.measured,
            "target": self.target,
            "unit": self.unit,
            "passed": self.passed,
            "gap": self.gap,
            "note": self.note,
        }


def _best_within(steps: list[R], p99_limit: float) -> float:
    """The highest accepted rate among steps whose p99 over every request (time-outs count
    at their time-out) met the limit, with no 5xx."""
    return max(
        (
            s["accepted_per_s"]
            for s in steps
            if s["latency_all_ms"]["p99"] is not None
            and s["latency_all_ms"]["p99"] < p99_limit
            and s["http_5xx"] == 0
        ),
        default=0.0,
    )


def verdicts(res: R) -> list[Verdict]:
    t = res["plan"]["targets"]
    out: list[Verdict] = []
    get = res.get("floors", {}).get("floor_get", {}).get("steps", [{}])[0].get("answered_per_s")
    intake = res.get("intake")
    if intake:
        steps = intake["schedule"]["steps"]
        sat = intake["saturation"]["steps"][0]["accepted_per_s"]
        out.append(
            Verdict(
                "intake: accepted orders/s with p99 < 100 ms",
                _best_within(steps, t["intake_p99_ms"]),
                t["intake_orders_per_s"],
                "orders/s",
                True,
                "best open-loop step meeting the p99",
            )
        )
        top = steps[-1]
        out.append(
            Verdict(
                f"intake: p99 at the top offered rate ({top['rate']:.0f}/s)",
                top["latency_all_ms"]["p99"],
                t["intake_p99_ms"],
                "ms",
                False,
            )
        )
        if get:
            out.append(
                Verdict(
                    "intake saturation / bare DRF GET (same run)",
                    sat / get,
                    t["intake_vs_get_floor"],
                    "x",
                    True,
                    f"{sat:.0f} orders/s vs {get:.0f} GET/s, closed loop, 32 connections",
                )
            )
    claims = res.get("claims")
    if claims:
        out.append(
            Verdict(
                "claims: coupons issued/s with p99 < 100 ms",
                _best_within(claims["schedule"]["steps"], t["claims_p99_ms"]),
                t["claims_per_s"],
                "coupons/s",
                True,
                "best open-loop step meeting the p99; saturation "
                f"{claims['saturation']['steps'][0]['accepted_per_s']:.0f}/s",
            )
        )
    e2e = res.get("e2e")
    if e2e:
        main = e2e["main"]
        probes = [r for r in e2e["probes"] if r["sustained"]]
        best = max(probes, key=lambda r: r["paid_per_s"], default=None)
        probe_note = (
            f"; the best {best['seconds']:.0f} s probe held {best['paid_per_s']:.0f} paid/s at "
            f"{best['rate']:.0f}/s offered"
            if best
            else ""
        )
        out.append(
            Verdict(
                f"end to end: paid orders/s sustained {main['seconds']:.0f} s, backlog flat",
                main["paid_per_s"] if main["sustained"] else 0.0,
                t["e2e_paid_per_s"],
                "paid/s",
                True,
                f"the {main['seconds']:.0f} s run at {main['rate']:.0f}/s offered paid "
                f"{main['paid_per_s']:.0f}/s and was "
                + ("sustained" if main["sustained"] else f"NOT sustained ({_why_not(main)})")
                + probe_note,
            )
        )
        out += _e2e_cost_verdicts(res, t, main)
    out += _floor_ratio_verdicts(res, t) + _overload_verdicts(res, t) + _backlog_verdicts(res, t)
    inv = res.get("invariants")
    if inv:
        out.append(
            Verdict(
                "accepted orders not terminal afterwards",
                inv["violations"]["terminal"],
                1,
                "orders",
                False,
            )
        )
        others = sum(n for k, n in inv["violations"].items() if k != "terminal")
        out.append(
            Verdict("invariant violations (stock, coupons, budget, charges)", others, 1, "", False)
        )
    scale = res.get("scale")
    if scale and len(scale["probes"]) > 1:
        first, last = scale["probes"][0], scale["probes"][-1]
        p0, p1 = first["step"]["latency_ms"]["p50"], last["step"]["latency_ms"]["p50"]
        spread = abs(p1 - p0) / p0 if p0 and p1 is not None else None
        out.append(
            Verdict(
                f"intake p50 change, 0 vs {last['waiting_before']:,} waiting",
                spread,
                t["scale_p50_spread"],
                "fraction",
                False,
                f"{p0:.1f} ms vs {p1:.1f} ms" if p0 and p1 else "",
            )
        )
    return out


def _e2e_cost_verdicts(res: R, t: R, main: R) -> list[Verdict]:
    """The story's average rate, and what a paid order costs at the rate the run held: the
    main run if it was sustained, else the best probe that was (as the CPU table shows)."""
    held = main if main["sustained"] else None
    if held is None:
        held = max(
            (r for r in res["e2e"]["probes"] if r["sustained"]),
            key=lambda r: r["paid_per_s"],
            default=None,
        )
    if held is None or not held.get("paid_in_run"):
        return []
    cpu = held["cpu_ms_per_paid_order"]
    where = f"{held['name']}: {held['paid_per_s']:.0f} paid/s at {held['rate']:.0f}/s offered"
    p99 = res.get("orders", {}).get(held["name"], {}).get("accept_to_paid_s", {}).get("p99")
    return [
        Verdict(
            f"end to end: paid orders/s sustained {main['seconds']:.0f} s (the story's average)",
            main["paid_per_s"] if main["sustained"] else 0.0,
            t.get("e2e_paid_per_s_average", 309.0),
            "paid/s",
            True,
        ),
        Verdict(
            "end to end: CPU ms per paid order, our processes",
            sum(v for k, v in cpu.items() if k in OUR_KINDS),
            t.get("e2e_cpu_ms_per_paid", 5.0),
            "ms CPU",
            False,
            where + "; " + ", ".join(sorted(OUR_KINDS)),
        ),
        Verdict(
            "end to end: CPU ms per paid order, load generator + sandbox",
            sum(v for k, v in cpu.items() if k in HARNESS_KINDS),
            t.get("e2e_harness_cpu_ms_per_paid", 1.5),
            "ms CPU",
            False,
            where,
        ),
        Verdict(
            "end to end: accept-to-paid p99",
            p99,
            t.get("e2e_paid_p99_s", 2.0),
            "s",
            False,
            where,
        ),
    ]


def _floor_ratio_verdicts(res: R, t: R) -> list[Verdict]:
    out: list[Verdict] = []
    claims = res.get("claims")
    ins = res.get("floors", {}).get("floor_insert", {}).get("steps", [{}])[0].get("answered_per_s")
    alone = res.get("scale", {}).get("intake_alone")
    if alone and ins:
        rate = alone["steps"][0]["accepted_per_s"]
        out.append(
            Verdict(
                "intake sat., reservations stopped / POST+INSERT floor",
                rate / ins,
                t.get("intake_alone_vs_insert_floor", 0.8),
                "x",
                True,
                f"{rate:.0f} orders/s vs {ins:.0f} inserts/s",
            )
        )
    if claims and ins:
        rate = claims["saturation"]["steps"][0]["accepted_per_s"]
        out.append(
            Verdict(
                "claims saturation / POST+INSERT floor",
                rate / ins,
                t.get("claims_vs_insert_floor", 0.6),
                "x",
                True,
                f"{rate:.0f} coupons/s vs {ins:.0f} inserts/s",
            )
        )
    return out


def _overload_verdicts(res: R, t: R) -> list[Verdict]:
    out: list[Verdict] = []
    over = res.get("overload")
    runs = over.get("runs") or [{"factor": 5.0, **over}] if over else []
    factors, floors = t.get("overload_factors", [5.0]), t.get("overload_goodput", [0.7])
    goodputs = dict(zip(factors, floors, strict=True))
    for run in runs:
        step = run["summary"]["steps"][0]
        f = run["factor"]
        if run.get("goodput_vs_saturation") is not None and f in goodputs:
            out.append(
                Verdict(
                    f"overload {f:g}x: accepted/s vs intake saturation",
                    run["goodput_vs_saturation"],
                    goodputs[f],
                    "x",
                    True,
                    f"{step['accepted_per_s']:.0f}/s accepted of {run['rate']:.0f}/s offered; "
                    f"{step['http_429']} answered 429",
                )
            )
        out.append(Verdict(f"overload {f:g}x: 5xx answers", step["http_5xx"], 1, "count", False))
        out.append(Verdict(f"overload {f:g}x: time-outs", step["timeouts"], 1, "count", False))
        out.append(
            Verdict(
                f"overload {f:g}x: p99 of every answer",
                step["latency_all_ms"]["p99"],
                t["overload_p99_ms"],
                "ms",
                False,
                f"at {run['rate']:.0f}/s for {step['duration']:.0f} s; p50 "
                f"{step['latency_all_ms']['p50'] or 0:.0f} ms; {step['not_sent']} never sent",
            )
        )
    return out


def _backlog_verdicts(res: R, t: R) -> list[Verdict]:
    """The waits promised to orders that waited 5 s or more. A run whose backlog phase built no
    such wait says so, with why, instead of leaving the target out."""
    ran = res.get("backlog")
    backlog = res.get("orders", {}).get("backlog")
    if not ran or not backlog:
        return []
    error = backlog.get("long_wait_error_p90")
    if error is not None:
        note = f"{backlog['long_waits']} orders waited 5 s or more"
        assumed = backlog.get("long_wait_assumed_drain_per_s_p50")
        met = backlog.get("long_wait_actual_drain_per_s_p50")
        if assumed and met:
            note += f"; their promises assumed {assumed:.0f} orders/s drained, they met {met:.0f}/s"
        if backlog.get("never_left_line"):
            note += (
                f"; {backlog['never_left_line']} accepted orders had not left the line when the "
                "drain stopped waiting, and are not counted"
            )
    else:
        step = ran["summary"]["steps"][0]
        longest = (backlog.get("actual_wait_s") or {}).get("max")
        note = (
            f"not exercised: no order waited 5 s or more (longest {_seconds(longest)}); at "
            f"{step['rate']:.0f}/s offered the door took in {step['accepted_per_s']:.0f}/s and "
            f"answered {step['http_429']} with 429, so no line built"
        )
    return [
        Verdict(
            "backlog: p90 |estimated - actual| / actual, waits >= 5 s",
            error,
            t.get("wait_estimate_error_p90", 0.25),
            "fraction",
            False,
            note,
        )
    ]


def _seconds(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f} s"


def _why_not(run: R) -> str:
    """Why an end-to-end run did not count as sustained, in the judge's own terms."""
    step = run["summary"]["steps"][0]
    reasons = []
    if lost := step["timeouts"] + step["not_sent"] + step["http_5xx"]:
        reasons.append(f"{lost} requests timed out, unsent or 5xx")
    if not run.get("taken_in", True):
        reasons.append(f"{run['accepted_per_s']:.0f}/s accepted of {run['rate']:.0f}/s offered")
    if run["backlog_slope_per_s"] > run["backlog_allowed_slope_per_s"]:
        reasons.append(f"backlog growing {run['backlog_slope_per_s']:+.1f}/s")
    if run["callback_backlog_slope_per_s"] > 2 * run["backlog_allowed_slope_per_s"]:
        reasons.append(f"callbacks backlog growing {run['callback_backlog_slope_per_s']:+.1f}/s")
    return "; ".join(reasons) or "see the run"
