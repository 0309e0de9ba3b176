"""The cluster benchmark's results: each cluster's figures cut down to what the report needs,
the targets (bench/plan.py `Targets`, judged as the single-host report judges overload),
CPU per paid order by process kind and its ratio from the first host count to the last,
and the short text printed at the end."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.cluster.place import ADDED_KINDS, PRODUCT_KINDS
from bench.plan import Plan, Targets
from bench.report.verdicts import _overload_verdicts

R = dict[str, Any]
STEP_FIELDS = (
    "rate",
    "duration",
    "accepted",
    "accepted_per_s",
    "answered",
    "http_429",
    "http_5xx",
    "timeouts",
    "not_sent",
)


def step_brief(step: R) -> R:
    """A step's counts and latencies: from when each request was due (what the targets
    judge), and from when it was sent (service: without the wait for one of the load
    generator's connections, which an open loop at a rate beyond them adds)."""
    every, accepted = step.get("latency_all_ms") or {}, step.get("latency_ms") or {}
    service = step.get("service_ms") or {}
    return {
        **{k: step.get(k) for k in STEP_FIELDS},
        "p50_ms": every.get("p50"),
        "p99_ms": every.get("p99"),
        "p99_accepted_ms": accepted.get("p99"),
        "service_p50_ms": service.get("p50"),
        "service_p99_ms": service.get("p99"),
    }


def per_request_ms(cpu: R, count: int) -> R:
    return {k: round(v * 1000 / count, 3) for k, v in cpu.items() if count} if count else {}


def overload_brief(runs: list[R]) -> list[R]:
    out = []
    for run in runs:
        step = run["summary"]["steps"][0]
        out.append(
            {
                "factor": run["factor"],
                "rate": run["rate"],
                "saturation": run["saturation"],
                "goodput_vs_saturation": run["goodput_vs_saturation"],
                "step": step_brief(step),
                "cpu_ms_per_answer": per_request_ms(run["cpu_s"], step["answered"]),
                "drain": {k: run["drain"].get(k) for k in ("drained", "seconds", "orders_left")},
            }
        )
    return out


def judged(runs: list[R], prefix: str) -> list[R]:
    """The single-host report's overload verdicts (bench/report/verdicts.py) on these runs."""
    if not runs:
        return []
    found = _overload_verdicts({"overload": {"runs": runs}}, asdict(Targets()))
    return [{**v.as_dict(), "name": f"{prefix}{v.name}"} for v in found]


def config_results(
    *,
    hosts: int,
    results: R,
    door: list[R],
    servers: dict[str, R],
    seconds: float,
    loopback: str,
    versions: R,
) -> R:
    intake, e2e, over = results["intake"], results["e2e"], results["overload"]
    main = e2e["main"]
    sat_step = intake["saturation"]["steps"][0]
    waits = results.get("db_waits", {})
    return {
        "hosts": hosts,
        "seconds": seconds,
        "network": f"loopback ({loopback})" if loopback else "a network namespace per place",
        "versions": versions,
        "intake": {
            "saturation": step_brief(sat_step),
            "schedule": [step_brief(s) for s in intake["schedule"]["steps"]],
            "drain_orders_per_s": intake["drain"].get("orders_per_s"),
            "cpu_ms_per_accepted": per_request_ms(
                sat_step.get("cpu_s") or {}, sat_step["accepted"]
            ),
        },
        "e2e": {
            "rate": main["rate"],
            "seconds": main["seconds"],
            "accepted_per_s": main["accepted_per_s"],
            "paid_per_s": main["paid_per_s"],
            "paid_in_run": main["paid_in_run"],
            "sustained": main["sustained"],
            "backlog_slope_per_s": main["backlog_slope_per_s"],
            # Cores used by processes outside the benchmark meanwhile: a noisy machine's mark.
            "others_share_of_cores": (main.get("machine") or {}).get("others_share_of_cores"),
            "step": step_brief(main["summary"]["steps"][0]),
            "cpu_ms_per_paid_order": {
                k: round(v, 3) for k, v in main["cpu_ms_per_paid_order"].items()
            },
            "probes": [{"rate": p["rate"], "sustained": p["sustained"]} for p in e2e["probes"]],
        },
        "overload": overload_brief(over["runs"]),
        "door": overload_brief(door),
        "servers": servers,
        "db_waits": {
            name: {"active_backends_avg": w["active_backends_avg"], "top": w["top"][:4]}
            for name, w in waits.items()
            if name.startswith(("e2e", "overload", "intake-saturation"))
        },
        "targets": judged(over["runs"], f"{hosts} host(s) via HAProxy: "),
        # The before of HAProxy's queue: reported beside the targets, not judged by them.
        "door_against_targets": judged(door, f"{hosts} host(s), Python door: "),
    }


def product_ms(cpu: R) -> float:
    return sum(v for k, v in cpu.items() if k in PRODUCT_KINDS)


def comparison(configs: list[R]) -> R:
    """CPU per paid order by kind for each host count, and the last over the first (the same
    offered rate, the same cores: what more hosts cost); intake saturation likewise; and how
    evenly HAProxy spread each cluster's requests."""
    first, last = configs[0], configs[-1]
    kinds = sorted({k for c in configs for k in c["e2e"]["cpu_ms_per_paid_order"]})
    by_kind = {k: [c["e2e"]["cpu_ms_per_paid_order"].get(k) for c in configs] for k in kinds}

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(b / a, 3) if a and b is not None else None

    totals = [product_ms(c["e2e"]["cpu_ms_per_paid_order"]) for c in configs]
    added = [
        sum(c["e2e"]["cpu_ms_per_paid_order"].get(k, 0.0) for k in ADDED_KINDS) for c in configs
    ]
    sats = [c["intake"]["saturation"]["accepted_per_s"] for c in configs]
    # Share of the database's active-backend samples spent waiting for a lock in the
    # end-to-end run (of the top statements kept): a lock that hosts queue on shows here.
    locks = [
        round(
            sum(
                share
                for key, share in c["db_waits"].get("e2e", {}).get("top", [])
                if key.startswith("Lock:")
            ),
            3,
        )
        for c in configs
    ]
    spread = {}
    for c in configs:
        total = sum(s["stot"] for s in c["servers"].values())
        if total:
            spread[str(c["hosts"])] = {
                name: round(s["stot"] / total, 3) for name, s in c["servers"].items()
            }
    return {
        "hosts": [c["hosts"] for c in configs],
        "cpu_ms_per_paid_order_by_kind": by_kind,
        "cpu_ms_per_paid_order_product": totals,
        "haproxy_pgbouncer_ms_per_paid_order": added,
        "ratio_last_over_first": {
            "product": ratio(totals[0], totals[-1]),
            **{k: ratio(v[0], v[-1]) for k, v in by_kind.items()},
        },
        "intake_saturation_per_s": sats,
        "intake_saturation_ratio": ratio(sats[0], sats[-1]),
        "e2e_paid_per_s": [c["e2e"]["paid_per_s"] for c in configs],
        "e2e_db_lock_wait_share": locks,
        "request_share_by_host": spread,
        "first_last": [first["hosts"], last["hosts"]],
    }


def results(
    *,
    mode: str,
    command: str,
    started_at: str,
    wall_seconds: float,
    plan: Plan,
    configs: list[R],
    machine: R,
) -> R:
    return {
        "mode": mode,
        "command": command,
        "started_at": started_at,
        "wall_seconds": wall_seconds,
        "plan": asdict(plan),
        "machine": machine,
        "configs": configs,
        "comparison": comparison(configs) if configs else {},
        "targets": [v for c in configs for v in c["targets"]],
        "targets_met": all(v["passed"] for c in configs for v in c["targets"]),
    }


def write(res: R, directory: Path, stamp: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{res['mode']}-{stamp}.json"
    path.write_text(json.dumps(res, indent=1, default=str) + "\n")
    return path


def _f(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def render(res: R) -> str:
    lines = [f"\ncluster benchmark, {res['mode']} ({res['command']})"]
    for c in res["configs"]:
        sat, e2e = c["intake"]["saturation"], c["e2e"]
        others = e2e.get("others_share_of_cores")
        lines.append(
            f"\n{c['hosts']} host(s), {c['network']}: intake saturation "
            f"{_f(sat['accepted_per_s'])}/s (p99 {_f(sat['p99_ms'])} ms); end to end at "
            f"{e2e['rate']:.0f}/s: paid {e2e['paid_per_s']:.0f}/s, "
            f"{'sustained' if e2e['sustained'] else 'NOT sustained'}, p99 "
            f"{_f(e2e['step']['p99_ms'])} ms; others used "
            f"{_f(others * 100 if others is not None else None)} % of the cores meanwhile"
        )
        for label, runs in (("HAProxy", c["overload"]), ("Python door", c["door"])):
            for run in runs:
                s = run["step"]
                cpu = run["cpu_ms_per_answer"]
                lines.append(
                    f"  {label} {run['factor']:g}x ({run['rate']:.0f}/s): accepted "
                    f"{_f(s['accepted_per_s'])}/s = {_f(run['goodput_vs_saturation'], '.2f')} of "
                    f"saturation, p99 {_f(s['p99_ms'])} ms (sent to answered "
                    f"{_f(s.get('service_p99_ms'))} ms), 429 {s['http_429']}, 5xx "
                    f"{s['http_5xx']}, time-outs {s['timeouts']}; CPU ms/answer gunicorn "
                    f"{_f(cpu.get('gunicorn'), '.2f')}, haproxy {_f(cpu.get('haproxy'), '.2f')}"
                )
        if c["servers"]:
            lines.append(
                "  HAProxy's requests by host: "
                + ", ".join(f"{h} {s['stot']}" for h, s in c["servers"].items())
            )
    cmp = res["comparison"]
    if cmp:
        hosts = " -> ".join(str(h) for h in cmp["hosts"])
        lines.append(f"\nCPU ms per paid order by kind, {hosts} host(s), same rate, same cores:")
        for kind, values in cmp["cpu_ms_per_paid_order_by_kind"].items():
            ratio = cmp["ratio_last_over_first"].get(kind)
            lines.append(
                f"  {kind:22} {'  '.join(_f(v, '6.3f') for v in values)}"
                + (f"   x{ratio:.2f}" if ratio is not None and len(values) > 1 else "")
            )
        lines.append(
            f"  {'product (sum)':22} "
            + "  ".join(_f(v, "6.3f") for v in cmp["cpu_ms_per_paid_order_product"])
            + f"   x{_f(cmp['ratio_last_over_first']['product'], '.2f')}"
        )
        lines.append(
            "  HAProxy + PgBouncer add "
            + ", ".join(_f(v, ".3f") for v in cmp["haproxy_pgbouncer_ms_per_paid_order"])
            + " ms per paid order; intake saturation "
            + " -> ".join(_f(v) for v in cmp["intake_saturation_per_s"])
            + f"/s (x{_f(cmp['intake_saturation_ratio'], '.2f')}); end-to-end backends "
            "waiting on a lock "
            + " -> ".join(_f(v, ".2f") for v in cmp.get("e2e_db_lock_wait_share", []))
        )
    door = [v for c in res["configs"] for v in c.get("door_against_targets", [])]
    lines.append(
        "\ntargets (through HAProxy): " + ("all met" if res["targets_met"] else "NOT all met")
    )
    for v in [*res["targets"], *door]:
        mark = {True: "PASS", False: "FAIL", None: "n/a"}[v.get("passed")]
        lines.append(f"  {mark}  {v['name']}: {_f(v.get('measured'), '.2f')} {v.get('unit', '')}")
    return "\n".join(lines)
