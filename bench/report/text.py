"""The report printed at the end of a run: the header, the tables, the notes, the invariants
and the targets."""

from __future__ import annotations

from collections.abc import Callable

from bench.report.tables import (
    _fmt,
    _table,
    backlog_table,
    cpu_run,
    cpu_table,
    e2e_table,
    rate_table,
    ratio_table,
    roundtrips_table,
    scale_table,
    statements_table,
    waits_table,
)
from bench.report.verdicts import R, Verdict, verdicts


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
    if res.get("connections"):
        parts.append(f"load generator's connections: {res['connections']}")
    if res.get("autovacuum"):
        parts.append(f"PostgreSQL autovacuum: {res['autovacuum']}")
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
        ("Round trips per order (saturation probes, and the end-to-end run)", roundtrips_table),
        ("End to end (statuses by callback; backlog = orders received or reserved)", e2e_table),
        (
            "The backlog phase's waits by when the orders were accepted (waited = accepted to "
            "reserved, server clock; promised = the 202's estimated_wait_seconds)",
            backlog_table,
        ),
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
        (
            "PostgreSQL's time by statement, per paid order (the end-to-end run above; "
            "pg_stat_statements, reset at the run's start)",
            statements_table,
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
    parts += targets(verdicts(res))
    return "\n".join(parts)


def targets(judged: list[Verdict]) -> list[str]:
    """The verdicts as a table (measured, target, PASS or FAIL and by how much), then their
    notes, one line each."""
    table = _table(
        ["target", "measured", "target", "verdict"],
        [
            [
                v.name,
                _fmt(v.measured, _spec(v.unit)) + f" {v.unit}",
                ("≥ " if v.at_least else "< ") + _fmt(v.target, _spec(v.unit)),
                ("PASS" if v.passed else "FAIL" if v.passed is not None else "n/a")
                + ("" if v.passed else f" ({v.gap})"),
            ]
            for v in judged
        ],
    )
    return [table, *(f"  - {v.name}: {v.note}" for v in judged if v.note)]


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
    if e2e and e2e.get("estimate") is not None:  # none when intake was skipped (--e2e-rate)
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


def _spec(unit: str) -> str:
    """Ratios, seconds and CPU milliseconds need their decimals; rates, counts and latencies in
    milliseconds do not."""
    return ".2f" if unit in ("x", "fraction", "s", "ms CPU") else ".0f"
