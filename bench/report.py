"""The benchmark's report: the tables printed at the end of a run, the targets with pass,
fail and by how much, the JSON written to bench/results/, and the PNG chart of rate,
latency and backlog over time."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

R = dict[str, Any]


# --- targets ----------------------------------------------------------------------------------


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
        step = main["summary"]["steps"][0]
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
                + (
                    "sustained"
                    if main["sustained"]
                    else f"NOT sustained ({step['timeouts'] + step['not_sent']} requests timed out)"
                )
                + probe_note,
            )
        )
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
    out: list[Verdict] = []
    backlog = res.get("orders", {}).get("backlog")
    if backlog and backlog.get("long_wait_error_p90") is not None:
        out.append(
            Verdict(
                "backlog: p90 |estimated - actual| / actual, waits >= 5 s",
                backlog["long_wait_error_p90"],
                t.get("wait_estimate_error_p90", 0.25),
                "fraction",
                False,
                f"{backlog['long_waits']} orders waited 5 s or more",
            )
        )
    return out


# --- tables -----------------------------------------------------------------------------------


def _fmt(value: Any, spec: str = ".0f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return format(value, spec)
    return str(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(
        h.rjust(w) if i else h.ljust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    sep = "  ".join("-" * w for w in widths)
    body = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    return "\n".join([line, sep, *body])


def others_share(res: R, start: float | None, end: float | None) -> float | None:
    """Share of the machine's cores busy outside this benchmark in [start, end]."""
    rows = [r for r in res.get("samples", []) if r.get("others_cpu") is not None]
    if start is None or end is None or len(rows) < 2:  # noqa: PLR2004
        return None
    first = min(rows, key=lambda r: abs(r["t"] - start))
    last = min(rows, key=lambda r: abs(r["t"] - end))
    if last["t"] <= first["t"]:
        return None
    cores = res.get("machine", {}).get("cpus") or 1
    return max(0.0, last["others_cpu"] - first["others_cpu"]) / ((last["t"] - first["t"]) * cores)


def _step_row(label: str, step: R, res: R | None = None) -> list[str]:
    lat = step["latency_ms"]
    share = None if res is None else others_share(res, step.get("t_start"), step.get("t_end"))
    other = {
        k: v
        for k, v in step["errors"].items()
        if k not in ("timeout", "not_sent") and not k.startswith("http_5")
    }
    return [
        label,
        _fmt(step.get("rate")) if step.get("rate") else "closed",
        _fmt(step["answered_per_s"]),
        _fmt(step["accepted_per_s"]),
        _fmt(lat["p50"], ".1f"),
        _fmt(lat["p95"], ".1f"),
        _fmt(lat["p99"], ".1f"),
        _fmt(step["latency_all_ms"]["p99"], ".1f"),
        _fmt(step["http_429"]),
        _fmt(step["http_5xx"]),
        _fmt(step["timeouts"] + step["not_sent"]),
        ", ".join(f"{k} {v}" for k, v in sorted(other.items())) or "-",
        _fmt(step.get("gunicorn_cpu_ms_per_request"), ".2f"),
        _fmt(None if share is None else share * 100, ".0f"),
    ]


def rate_table(res: R) -> str:
    rows: list[list[str]] = []
    floors = res.get("floors", {})
    for kind in ("floor_get", "floor_insert"):
        if kind in floors:
            rows.append(_step_row(kind.replace("_", " "), floors[kind]["steps"][0], res))
    for section in ("claims", "intake"):
        if section in res:
            for step in res[section]["schedule"]["steps"]:
                rows.append(_step_row(section, step, res))
            rows.append(
                _step_row(f"{section} saturation", res[section]["saturation"]["steps"][0], res)
            )
    e2e = res.get("e2e")
    if e2e:
        for run in [*e2e["probes"], e2e["main"]]:
            rows.append(_step_row(run["name"], run["summary"]["steps"][0], res))
    if "overload" in res:
        for run in res["overload"].get("runs") or [{"factor": 5, **res["overload"]}]:
            rows.append(_step_row(f"overload {run['factor']:g}x", run["summary"]["steps"][0], res))
    for probe in res.get("scale", {}).get("probes", []):
        rows.append(_step_row(f"scale {probe['waiting_before']:,} waiting", probe["step"], res))
    alone = res.get("scale", {}).get("intake_alone")
    if alone:
        rows.append(_step_row("intake sat., reservations stopped", alone["steps"][0], res))
    headers = [
        "phase",
        "offered/s",
        "answered/s",
        "accepted/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p99 all",
        "429",
        "5xx",
        "timeout",
        "other answers",
        "gunicorn CPU ms/accepted",
        "others %",
    ]
    return _table(headers, rows)


def e2e_table(res: R) -> str:
    e2e = res.get("e2e")
    if not e2e:
        return ""
    orders = res.get("orders", {})
    rows = []
    for run in [*e2e["probes"], e2e["main"]]:
        rep = orders.get(run["name"], {})
        paid = rep.get("accept_to_paid_s", {})
        est, act = rep.get("estimated_wait_s", {}), rep.get("actual_wait_s", {})
        rows.append(
            [
                run["name"],
                _fmt(run["rate"]),
                _fmt(run["accepted_per_s"]),
                _fmt(run["paid_per_s"]),
                _fmt(run["backlog_slope_per_s"], "+.1f"),
                _fmt(run["callback_backlog_slope_per_s"], "+.1f"),
                "yes" if run["sustained"] else "NO",
                _fmt(paid.get("p50"), ".2f"),
                _fmt(paid.get("p99"), ".2f"),
                f"{_fmt(est.get('p50'))}/{_fmt(est.get('p99'))}",
                f"{_fmt(act.get('p50'), '.2f')}/{_fmt(act.get('p99'), '.2f')}",
            ]
        )
    for name in ("intake", "intake-saturation", "overload"):
        rep = orders.get(name)
        if rep:
            paid = rep["accept_to_paid_s"]
            est, act = rep["estimated_wait_s"], rep["actual_wait_s"]
            rows.append(
                [
                    name,
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    _fmt(paid.get("p50"), ".2f"),
                    _fmt(paid.get("p99"), ".2f"),
                    f"{_fmt(est.get('p50'))}/{_fmt(est.get('p99'))}",
                    f"{_fmt(act.get('p50'), '.2f')}/{_fmt(act.get('p99'), '.2f')}",
                ]
            )
    headers = [
        "run",
        "offered/s",
        "accepted/s",
        "paid/s",
        "backlog/s",
        "callbacks/s",
        "flat",
        "→paid p50 s",
        "→paid p99 s",
        "est wait p50/p99 s",
        "actual wait p50/p99 s",
    ]
    return _table(headers, rows)


def cpu_run(res: R) -> R | None:
    """The end-to-end run whose CPU per order is shown: the main run if it held its rate,
    else the best probe that did (a run that collapsed spends its CPU on abandoned requests)."""
    e2e = res.get("e2e")
    if not e2e:
        return None
    held = [r for r in [*e2e["probes"], e2e["main"]] if r["sustained"]]
    if e2e["main"]["sustained"] or not held:
        return e2e["main"]
    return max(held, key=lambda r: r["paid_per_s"])


def cpu_table(res: R) -> str:
    main = cpu_run(res)
    if main is None:
        return ""
    peaks = res.get("peak_rss", {})
    seconds = main["summary"]["steps"][0]["duration"]
    rows = []
    for kind, cpu in sorted(main["cpu_s"].items(), key=lambda kv: -kv[1]):
        peak = peaks.get(kind, {})
        rows.append(
            [
                kind,
                _fmt(cpu, ".1f"),
                _fmt(cpu / seconds * 100, ".0f"),
                _fmt(main["cpu_ms_per_paid_order"].get(kind), ".3f"),
                _fmt(peak.get("sum_bytes", 0) / 2**20, ".0f"),
                _fmt(peak.get("largest_bytes", 0) / 2**20, ".0f"),
            ]
        )
    total = sum(v for k, v in main["cpu_s"].items() if k not in ("postgres-shared",))
    rows.append(
        [
            "total (without postgres-shared)",
            _fmt(total, ".1f"),
            _fmt(total / seconds * 100, ".0f"),
            _fmt(total * 1000 / main["paid_in_run"] if main["paid_in_run"] else None, ".3f"),
            "",
            "",
        ]
    )
    headers = [
        "process kind",
        "CPU s",
        "% of a core",
        "CPU ms/paid order",
        "peak RSS MB (sum)",
        "largest MB",
    ]
    return _table(headers, rows)


def ratio_table(res: R) -> str:
    floors = res.get("floors")
    if not floors:
        return ""
    get = floors["floor_get"]["steps"][0]
    ins = floors["floor_insert"]["steps"][0]
    noop = floors["noop"]["tasks_per_s"]
    rows = [
        [
            "bare DRF GET",
            _fmt(get["answered_per_s"]),
            "req/s",
            "1.00",
            _fmt(get.get("gunicorn_cpu_ms_per_request"), ".2f"),
        ],
        [
            "DRF POST + one INSERT",
            _fmt(ins["answered_per_s"]),
            "req/s",
            _fmt(ins["answered_per_s"] / get["answered_per_s"], ".2f"),
            _fmt(ins.get("gunicorn_cpu_ms_per_request"), ".2f"),
        ],
        [
            "Celery no-op drain",
            _fmt(noop),
            "tasks/s",
            "-",
            _fmt(floors["noop"].get("worker_cpu_ms_per_task"), ".2f"),
        ],
    ]
    for section, label in (("claims", "claims saturation"), ("intake", "intake saturation")):
        if section in res:
            step = res[section]["saturation"]["steps"][0]
            rows.append(
                [
                    label,
                    _fmt(step["accepted_per_s"]),
                    "/s",
                    f"{step['accepted_per_s'] / get['answered_per_s']:.2f} of GET, "
                    f"{step['accepted_per_s'] / ins['answered_per_s']:.2f} of insert",
                    _fmt(step.get("gunicorn_cpu_ms_per_request"), ".2f"),
                ]
            )
    alone = res.get("scale", {}).get("intake_alone")
    if alone:
        step = alone["steps"][0]
        rows.append(
            [
                "intake sat., reservations stopped",
                _fmt(step["accepted_per_s"]),
                "/s",
                f"{step['accepted_per_s'] / get['answered_per_s']:.2f} of GET, "
                f"{step['accepted_per_s'] / ins['answered_per_s']:.2f} of insert",
                _fmt(step.get("gunicorn_cpu_ms_per_request"), ".2f"),
            ]
        )
    if "e2e" in res:
        main = res["e2e"]["main"]
        rows.append(
            [
                "end to end (paid)",
                _fmt(main["paid_per_s"]),
                "paid/s",
                f"{main['paid_per_s'] / noop:.2f} of no-op drain, "
                f"{main['paid_per_s'] / get['answered_per_s']:.2f} of GET",
                _fmt(main["cpu_ms_per_paid_order"].get("gunicorn"), ".2f"),
            ]
        )
    return _table(
        ["figure", "rate", "unit", "ratio to floors", "gunicorn (worker) CPU ms each"], rows
    )


def roundtrips_table(res: R) -> str:
    """Round trips per accepted order or coupon, from the saturation probes."""
    rows = []
    sources = (
        ("claims saturation", res.get("claims", {}).get("saturation", {}).get("roundtrips")),
        (
            "intake sat., reservations stopped",
            res.get("scale", {}).get("intake_alone", {}).get("roundtrips"),
        ),
    )
    for label, trips in sources:
        if not trips:
            continue
        statements = trips["postgres_statements"]
        rows.append(
            [
                label,
                _fmt(statements.get("per_order"), ".2f")
                if statements.get("per_order") is not None
                else "n/a",
                _fmt(trips["postgres_commits_per_order"], ".2f"),
                _fmt(trips["wal_bytes_per_order"], ".0f"),
                _fmt(trips["redis_commands_per_order"], ".2f"),
                ", ".join(f"{k} {v:.2f}" for k, v in list(trips["redis_commands"].items())[:4]),
            ]
        )
    if not rows:
        return ""
    return _table(
        ["per accepted request", "PG statements", "PG commits", "WAL bytes", "Redis cmds", "top"],
        rows,
    )


def scale_table(res: R) -> str:
    scale = res.get("scale")
    if not scale:
        return ""
    rows = []
    for probe in scale["probes"]:
        lat = probe["step"]["latency_ms"]
        rows.append(
            [
                f"{probe['waiting_before']:,}",
                _fmt(probe["insert_seconds"], ".0f"),
                _fmt(probe["rate"]),
                _fmt(probe["step"]["accepted"]),
                _fmt(lat["p50"], ".1f"),
                _fmt(lat["p99"], ".1f"),
                _fmt(probe["step"]["http_429"]),
                _fmt(probe["gunicorn_cpu_ms_per_order"], ".2f"),
            ]
        )
    return _table(
        [
            "waiting before",
            "insert s",
            "rate/s",
            "accepted",
            "p50 ms",
            "p99 ms",
            "429",
            "gunicorn CPU ms/order",
        ],
        rows,
    )


def waits_table(res: R) -> str:
    waits = res.get("db_waits")
    if not waits:
        return ""
    rows = []
    for phase in ("claims", "intake-saturation", "intake", "e2e", "overload"):
        summary = waits.get(phase)
        if not summary or not summary["top"]:
            continue
        for i, (what, share) in enumerate(summary["top"][:6]):
            rows.append(
                [
                    phase if i == 0 else "",
                    _fmt(summary["active_backends_avg"], ".1f") if i == 0 else "",
                    f"{share * 100:.0f} %",
                    what,
                ]
            )
    return _table(["phase", "active backends", "share", "state in statement"], rows)


def render(res: R) -> str:
    shown = cpu_run(res)
    parts = [
        f"\n=== campaign-burst benchmark, {res['mode']} mode: {res['started_at']} ===",
        f"command: {res['command']}",
        f"machine: {res['machine']['cpus']} CPUs ({res['machine']['cpu_model']}), "
        f"{res['machine']['memory_gb']} GB; "
        + ", ".join(f"{k} {v}" for k, v in res["versions"].items()),
        f"stack: gunicorn {res['stack']['gunicorn']}; celery {res['stack']['celery']}; "
        f"sandbox {res['stack']['sandbox']}",
        f"env: {', '.join(f'{k}={v}' for k, v in res['stack']['env'].items())}",
    ]
    if res.get("skipped"):
        parts.append(f"SKIPPED phases (partial results): {', '.join(res['skipped'])}")
    sections: list[tuple[str, Callable[[R], str]]] = [
        (
            "Per offered rate (open loop unless 'closed'; latency from the scheduled send time, "
            "over answers; 'p99 all' counts time-outs at the time-out; 'others %': share of the "
            "cores used by processes outside the benchmark meanwhile)",
            rate_table,
        ),
        ("Floors and ratios (same run, same gunicorn and worker configuration)", ratio_table),
        ("Round trips per accepted request (saturation probes)", roundtrips_table),
        ("End to end (statuses by callback; backlog = orders received or reserved)", e2e_table),
        (
            "CPU per paid order by process kind (the main end-to-end run, or the best run that "
            "held its rate if it did not); peak RSS over the whole run",
            cpu_table,
        ),
        (
            "What this database's active backends were doing (sampled 10/s; Lock:* = waiting "
            "for a lock, running = on CPU or in the client protocol)",
            waits_table,
        ),
        ("Scale probe (reservation worker stopped; fixed rate)", scale_table),
    ]
    for title, build in sections:
        text = build(res)
        if text:
            which = (
                f" [{shown['name']} at {shown['rate']:.0f}/s]"
                if build is cpu_table and shown is not None
                else ""
            )
            parts += [f"\n{title}{which}", text]
    notes = _notes(res)
    if notes:
        parts += ["\nNotes", *(f"- {n}" for n in notes)]
    inv = res.get("invariants")
    if inv:
        parts.append(
            f"\nInvariants after the run ({inv['accepted_orders']} accepted orders, "
            f"{inv['charges_in_ledger']} charges in the sandbox ledger): "
            + ", ".join(f"{k} {v}" for k, v in inv["violations"].items())
        )
        parts += [f"  {line}" for line in inv["listed"]]
    parts.append("\nTargets")
    parts.append(
        _table(
            ["target", "measured", "target", "verdict"],
            [
                [
                    v.name,
                    _fmt(v.measured, ".2f" if v.unit in ("x", "fraction") else ".0f")
                    + f" {v.unit}",
                    ("≥ " if v.at_least else "< ")
                    + _fmt(v.target, ".2f" if v.unit in ("x", "fraction") else ".0f"),
                    ("PASS" if v.passed else "FAIL" if v.passed is not None else "n/a")
                    + ("" if v.passed else f" ({v.gap})"),
                ]
                for v in verdicts(res)
            ],
        )
    )
    parts += [f"  - {v.name}: {v.note}" for v in verdicts(res) if v.note]
    return "\n".join(parts)


def _notes(res: R) -> list[str]:
    notes = []
    if res.get("coupons_seeded"):
        notes.append(
            f"{res['coupons_seeded']:,} coupons were seeded straight into the database (as if "
            "claimed) for the order phases; the claims phase issued the rest over HTTP."
        )
    lg = res.get("loadgen")
    if lg:
        notes.append(
            f"load generator: {lg['process_time_s']:.0f} CPU s over the run "
            f"({lg['process_time_s'] / res['wall_seconds'] * 100:.0f} % of a core on average), "
            f"{lg['callbacks']:,} callbacks received, peak RSS {lg['max_rss_kb'] / 1024:.0f} MB; "
            "it shares the 2 cores with the stack."
        )
        for section in ("intake", "claims"):
            if section in res:
                lag = res[section]["schedule"]["schedule_lag_ms"]
                notes.append(
                    f"{section}: the generator itself dispatched requests p50 {lag['p50']:.1f} ms "
                    f"/ p99 {lag['p99']:.1f} ms late (its own lag, separate from the server's); "
                    f"CPU {res[section]['schedule']['loadgen_cpu_s']:.1f} s."
                )
    drains = [
        d
        for d in (
            res.get("claims", {}).get("drain"),
            res.get("intake", {}).get("drain"),
            res.get("overload", {}).get("drain"),
            *[r.get("drain") for r in res.get("e2e", {}).get("probes", [])],
            res.get("e2e", {}).get("main", {}).get("drain"),
        )
        if d
    ]
    for d in drains:
        if d.get("gunicorn_restarted"):
            notes.append(
                f"after {d['label']}: gunicorn was restarted to drop "
                f"{d['abandoned_in_accept_queue']} connections still queued in its listen socket "
                "(their clients had given up; a sync worker would have served them all first)."
            )
        if not d["drained"]:
            notes.append(
                f"after {d['label']}: not quiet within the {d['cap']:.0f} s cap "
                f"({d['orders_left']} orders, {d['callbacks_left']} callbacks left, gunicorn "
                + ("idle" if d["gunicorn_idle"] else "still serving requests clients gave up on")
                + "); the next phase began with that load."
            )
    e2e = res.get("e2e")
    if e2e:
        notes.append(
            f"sustainable-rate estimate: intake saturates at {e2e['intake_capacity']:.0f}/s, the "
            f"pipeline alone drains {_fmt(e2e['pipeline_drain_rate'])}/s; sharing 2 cores, "
            f"1/(1/a+1/b) = {e2e['estimate']:.0f}/s."
        )
    mem = res.get("scale", {}).get("redis_memory")
    if mem and "keys_bytes_per_order" in mem:
        grew = {
            k: mem["after"]["fast_db_by_prefix"].get(k, 0)
            - mem["before"]["fast_db_by_prefix"].get(k, 0)
            for k in mem["after"]["fast_db_by_prefix"]
        }
        top = ", ".join(f"{k} {v:+,}" for k, v in sorted(grew.items(), key=lambda kv: -kv[1])[:3])
        notes.append(
            "Redis memory per waiting order: "
            f"{mem['keys_bytes_per_order']:.1f} bytes of this run's keys (DB 10+11, MEMORY "
            f"USAGE) and {mem['used_memory_bytes_per_order']:.1f} bytes of INFO used_memory "
            f"(whole server, shared) over {mem['orders']} orders queued through intake (keys "
            f"that grew, bytes: {top}); at the end {mem['at_end']['keys_bytes']:,} bytes of "
            f"keys for {mem['at_end']['waiting_orders']:,} waiting orders "
            f"({mem['at_end']['keys_bytes_per_waiting_order']:.2f} bytes each)."
        )
    load = res.get("machine_load")
    if load and load.get("seconds"):
        notes.append(
            f"machine: load average {load['loadavg_at_start'][0]:.1f} at start; over the run the "
            f"cores were busy {load['machine_busy_s']:.0f} CPU s, {load['ours_s']:.0f} of them in "
            f"this benchmark's processes and {load['others_s']:.0f} elsewhere "
            f"({load['others_share_of_cores'] * 100:.0f} % of the 2 cores: other work on the "
            "machine competed with the stack"
            + (", so these figures understate it)" if load["others_share_of_cores"] > 0.05 else ")")  # noqa: PLR2004
            + "."
        )
    main = res.get("e2e", {}).get("main", {}).get("machine")
    if main and main.get("seconds"):
        notes.append(
            f"during the main end-to-end run, other processes used "
            f"{main['others_share_of_cores'] * 100:.0f} % of the 2 cores."
        )
    notes.append(
        "PostgreSQL and Redis are this machine's shared servers: 'postgres' counts this "
        "database's backends, 'postgres-shared' the server's background processes, 'redis' "
        "the whole server; other work on the machine at the same time lands there too."
    )
    return notes


# --- files ------------------------------------------------------------------------------------


def write(res: R, directory: Path, stamp: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    res = {**res, "targets": [v.as_dict() for v in verdicts(res)]}
    base = directory / f"{res['mode']}-{stamp}"
    json_path = base.with_suffix(".json")
    json_path.write_text(json.dumps(res, indent=1, default=str) + "\n")
    png_path = base.with_suffix(".png")
    chart(res, png_path)
    return [json_path, png_path]


def chart(res: R, path: Path) -> None:
    """Rate, latency and backlog over time, one panel each, phases shaded and named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = res["timeseries"]
    since = ts["since"]
    xs = list(range(len(ts["offered"])))
    fig, (rate_ax, lat_ax, back_ax) = plt.subplots(3, 1, figsize=(14, 10), sharex=True)
    rate_ax.plot(xs, ts["offered"], label="offered req/s (by scheduled time)", lw=0.8)
    rate_ax.plot(xs, ts["ok"], label="answered as promised /s", lw=0.8)
    rate_ax.plot(xs, ts["callbacks_paid"], label="paid /s (callbacks)", lw=0.8)
    rate_ax.plot(
        xs,
        [a + b for a, b in zip(ts["failed"], ts["refused_4xx"], strict=True)],
        label="4xx, 5xx, time-outs /s",
        lw=0.8,
    )
    rate_ax.set_ylabel("per second")
    rate_ax.legend(loc="upper left", fontsize=8)
    lat_ax.plot(xs, [v or float("nan") for v in ts["latency_p50_ms"]], label="p50", lw=0.8)
    lat_ax.plot(xs, [v or float("nan") for v in ts["latency_p99_ms"]], label="p99", lw=0.8)
    lat_ax.axhline(100, color="grey", ls=":", lw=0.8)
    lat_ax.set_yscale("log")
    lat_ax.set_ylabel("API latency ms")
    lat_ax.legend(loc="upper left", fontsize=8)
    samples = [s for s in res["samples"] if s.get("received") is not None]
    back_ax.plot(
        [s["t"] - since for s in samples],
        [s["received"] for s in samples],
        label="received (in line)",
        lw=0.8,
    )
    back_ax.plot(
        [s["t"] - since for s in samples],
        [s["reserved"] for s in samples],
        label="reserved",
        lw=0.8,
    )
    back_ax.plot(
        [s["t"] - since for s in samples],
        [s["callbacks_pending"] for s in samples],
        label="callbacks pending",
        lw=0.8,
    )
    queued = [s for s in res["samples"] if s.get("accept_queue") is not None]
    queue_ax = back_ax.twinx()
    queue_ax.plot(
        [s["t"] - since for s in queued],
        [s["accept_queue"] for s in queued],
        label="gunicorn accept queue (right axis)",
        lw=0.8,
        ls="--",
        color="C3",
    )
    queue_ax.set_ylabel("connections waiting for gunicorn")
    queue_ax.legend(loc="upper right", fontsize=8)
    back_ax.set_ylabel("orders (DB)")
    back_ax.set_xlabel("seconds since start")
    back_ax.legend(loc="upper left", fontsize=8)
    for i, mark in enumerate(m for m in res["marks"] if not m["name"].startswith("drain")):
        for ax in (rate_ax, lat_ax, back_ax):
            ax.axvspan(mark["start"] - since, mark["end"] - since, color=f"C{i % 10}", alpha=0.06)
        rate_ax.annotate(
            mark["name"],
            xy=(mark["start"] - since, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            rotation=60,
            va="bottom",
        )
    fig.suptitle(f"campaign-burst benchmark, {res['mode']} mode, {res['started_at']}", y=0.995)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.report bench/results/<run>.json`: print a run's report again and
    rewrite its derived parts (the targets in the JSON, the chart) from its measurements,
    which are left as they were; the re-rendering is recorded in the JSON."""
    import argparse
    import sys
    from datetime import UTC, datetime

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results", type=Path)
    args = parser.parse_args(argv)
    res = json.loads(args.results.read_text())
    res["targets"] = [v.as_dict() for v in verdicts(res)]
    res["report_rendered_again_at"] = datetime.now(UTC).isoformat()
    args.results.write_text(json.dumps(res, indent=1, default=str) + "\n")
    chart(res, args.results.with_suffix(".png"))
    sys.stdout.write(render(res) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
