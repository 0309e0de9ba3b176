"""The report's tables, one per phase or figure, as fixed-width text."""

from __future__ import annotations

from typing import Any

from bench.report.verdicts import R


def _fmt(value: Any, spec: str = ".0f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return format(value, spec)
    return str(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """Aligned columns; no rows (a phase skipped) is no table."""
    if not rows:
        return ""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
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
    for kind in (
        "floor_get",
        "floor_insert",
        "floor_get_per_connection",
        "floor_insert_per_connection",
    ):
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
    for step in res.get("backlog", {}).get("summary", {}).get("steps", []):
        rows.append(_step_row("backlog", step, res))
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
    """Round trips per accepted order or coupon (the saturation probes), and per paid order
    (the end-to-end run whose CPU is shown)."""
    rows = []
    shown = cpu_run(res)
    sources = (
        ("claims saturation", res.get("claims", {}).get("saturation", {}).get("roundtrips")),
        (
            "intake sat., reservations stopped",
            res.get("scale", {}).get("intake_alone", {}).get("roundtrips"),
        ),
        (
            f"{shown['name']} at {shown['rate']:.0f}/s, per paid order" if shown else "",
            shown.get("roundtrips") if shown else None,
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
        ["per order", "PG statements", "PG commits", "WAL bytes", "Redis cmds", "top"],
        rows,
    )


def statements_table(res: R) -> str:
    """The end-to-end run's statements by the database's own time on them, per paid order:
    which statement the backends spend themselves on (pg_stat_statements' execution time,
    not the client's round trip)."""
    shown = cpu_run(res)
    trips = (shown or {}).get("roundtrips") or {}
    slowest = trips.get("postgres_statements", {}).get("slowest")
    if not slowest:
        return ""
    rows = [
        [_fmt(s["exec_ms_per_order"], ".3f"), _fmt(s["per_order"], ".2f"), s["query"][:110]]
        for s in slowest
    ]
    return _table(["exec ms/paid", "calls/paid", "statement"], rows)


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


def backlog_table(res: R) -> str:
    """The backlog phase's promised and actual waits by when the orders were accepted (runs
    before 2026-12-05 did not record them)."""
    rep = res.get("orders", {}).get("backlog", {})
    bins = rep.get("waits_by_acceptance")
    if not bins or not rep.get("long_waits"):
        return ""
    rows = [
        [
            _fmt(b["t_s"]),
            _fmt(b["orders"]),
            _fmt(b["position_p50"]),
            _fmt(b["estimated_p50_s"], ".1f"),
            _fmt(b["actual_p50_s"], ".1f"),
            _fmt(b["long_waits"]),
            _fmt(b["long_wait_error_p90"], ".2f"),
        ]
        for b in bins
    ]
    return _table(
        [
            "accepted at s",
            "orders",
            "position p50",
            "promised p50 s",
            "actual p50 s",
            "waited >= 5 s",
            "p90 |error|/actual",
        ],
        rows,
    )


def waits_table(res: R) -> str:
    waits = res.get("db_waits")
    if not waits:
        return ""
    rows = []
    for phase in ("claims", "intake-saturation", "intake", "e2e", "backlog", "overload"):
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
