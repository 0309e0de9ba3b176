"""The figures the load generator reports: per step of a phase (rates, answers, latency
quantiles), per phase what happened to the accepted orders (by callback, accept→paid,
estimated versus actual wait), and the time series behind the chart."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime

from bench.load.jobs import LONG_WAIT_S, TERMINAL, Accepted, JsonDict, Result, percentile, quantiles

WAIT_BIN_S = 5.0  # waits_by_acceptance: seconds of acceptance per bin
# One order's wait: (accepted at, position, promised wait s, actual wait s).
Wait = tuple[float, int | None, float, float]


class Figures:
    """Read what a LoadGenerator recorded (`results`, `accepted`, `callbacks`)."""

    results: list[Result]
    accepted: dict[str, Accepted]
    callbacks: dict[str, dict[str, tuple[float, str, str]]]
    schedule_lag: list[float]
    error_samples: dict[str, str]

    def summary(self, phase: str, spec: JsonDict, wall: float, cpu: float) -> JsonDict:
        rows = [r for r in self.results if r.phase == phase]
        steps = []
        for index, step in enumerate(spec["steps"]):
            mine = [r for r in rows if r.step == index]
            duration = float(step["duration"])
            answered = [r for r in mine if r.status]
            latency = [(r.done - r.due) * 1000 for r in answered]
            everything = [(r.done - r.due) * 1000 for r in mine if r.error != "no_coupon"]
            service = [(r.done - r.sent) * 1000 for r in answered]
            statuses = Counter(str(r.status) for r in answered)
            errors = Counter(r.error for r in mine if r.error)
            accepted = sum(r.accepted for r in mine)
            first = min((r.due for r in mine), default=0.0)
            last = max((r.done for r in mine), default=0.0)
            steps.append(
                {
                    "t_start": step.get("t_start"),
                    "t_end": step.get("t_end"),
                    "rate": step.get("rate"),
                    "duration": duration,
                    "requests": len(mine),
                    "answered": len(answered),
                    "accepted": accepted,
                    "accepted_per_s": accepted / duration,
                    "answered_per_s": len(answered) / duration,
                    "replays": sum(r.replay for r in mine),
                    "replays_ok": sum(1 for r in mine if r.replay and r.status and not r.error),
                    "status": dict(statuses),
                    "errors": dict(errors),
                    "http_429": statuses.get("429", 0),
                    "http_5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
                    "timeouts": errors.get("timeout", 0),
                    "not_sent": errors.get("not_sent", 0),
                    "latency_ms": quantiles(latency),
                    "latency_all_ms": quantiles(everything),
                    "service_ms": quantiles(service),
                    "span_s": last - first,
                }
            )
        lag = sorted(self.schedule_lag)
        self.schedule_lag = []
        return {
            "phase": phase,
            "kind": spec["kind"],
            "mode": spec["mode"],
            # Kept-alive connections in the pool it sent on; 0: a new connection per request.
            "keepalive": int(spec.get("keepalive") or 0),
            "steps": steps,
            "wall_s": wall,
            "loadgen_cpu_s": cpu,
            "error_samples": {
                code: self.error_samples[code]
                for step in steps
                for code in step["errors"]
                if code in self.error_samples
            },
            "schedule_lag_ms": {
                "p50": (percentile(lag, 50) or 0) * 1000,
                "p99": (percentile(lag, 99) or 0) * 1000,
            },
        }

    # --- what happened to the accepted orders ------------------------------------------------

    def orders_report(self, phases: list[str]) -> JsonDict:
        """Per phase: terminal outcomes by callback, accept→paid, estimated versus actual wait."""
        report: JsonDict = {}
        for phase in phases:
            mine = {oid: a for oid, a in self.accepted.items() if a.phase == phase}
            outcomes: Counter[str] = Counter()
            to_paid, to_terminal, estimated, actual, error = [], [], [], [], []
            relative: list[float] = []
            waits: list[Wait] = []
            within = 0
            for oid, acc in mine.items():
                seen = self.callbacks.get(oid, {})
                final = next((s for s in seen if s in TERMINAL), None)
                outcomes[final or "no_terminal_callback"] += 1
                if "paid" in seen:
                    to_paid.append(seen["paid"][0] - acc.at)
                if final:
                    to_terminal.append(seen[final][0] - acc.at)
                # When "reserved" was coalesced into the outcome (one callback carries the
                # latest state), a charge's outcome marks leaving the line, late by the
                # charge's latency at most; a rejection is leaving it.
                left_line = seen.get("reserved") or next(
                    (seen[s] for s in ("paid", "payment_failed", "rejected") if s in seen), None
                )
                if left_line and acc.estimated_wait is not None:
                    waited = _seconds_between(left_line[2], left_line[1])
                    if waited is not None:
                        estimated.append(float(acc.estimated_wait))
                        actual.append(waited)
                        error.append(waited - acc.estimated_wait)
                        within += waited <= acc.estimated_wait + 1
                        waits.append((acc.at, acc.position, float(acc.estimated_wait), waited))
                        if waited >= LONG_WAIT_S:
                            relative.append(abs(acc.estimated_wait - waited) / waited)
            report[phase] = {
                "accepted": len(mine),
                "outcomes": dict(outcomes),
                "accept_to_paid_s": quantiles(to_paid),
                "accept_to_terminal_s": quantiles(to_terminal),
                "estimated_wait_s": quantiles(estimated),
                "actual_wait_s": quantiles(actual),
                "wait_error_s": quantiles(error),
                "actual_within_estimate_plus_1s": within / len(actual) if actual else None,
                "long_waits": len(relative),
                "long_wait_error_p90": percentile(sorted(relative), 90) if relative else None,
                "never_left_line": sum(1 for a in mine.values() if a.estimated_wait is not None)
                - len(actual),
                "waits_by_acceptance": waits_by_acceptance(waits),
                **_drain_rates(waits),
            }
        return report

    def timeseries(self, since: float) -> JsonDict:
        """Per second from `since`: offered, answered by class, latency p50/p99 (by answer
        time), callbacks reserved / paid / other terminal (by arrival)."""
        end = time.time()
        n = max(1, int(end - since) + 1)
        offered = [0] * n
        ok = [0] * n
        refused = [0] * n  # 4xx
        failed = [0] * n  # 5xx, time-outs, never sent
        lat: list[list[float]] = [[] for _ in range(n)]
        for r in self.results:
            if r.due < since or r.kind not in ("claims", "orders"):
                continue
            offered[min(n - 1, int(r.due - since))] += 1
            i = min(n - 1, int(r.done - since))
            if r.status and not r.error:
                ok[i] += 1
            elif r.status and r.status < 500:  # noqa: PLR2004
                refused[i] += 1
            else:
                failed[i] += 1
            if r.status:
                lat[i].append((r.done - r.due) * 1000)
        p50, p99 = [], []
        for values in lat:
            values.sort()
            p50.append(percentile(values, 50))
            p99.append(percentile(values, 99))
        return {
            "since": since,
            "offered": offered,
            "ok": ok,
            "refused_4xx": refused,
            "failed": failed,
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            **self._callback_series(since, n),
        }

    def _callback_series(self, since: float, n: int) -> dict[str, list[int]]:
        series = {name: [0] * n for name in ("reserved", "paid", "other_terminal")}
        for seen in self.callbacks.values():
            for status, (arrived, _, _) in seen.items():
                if arrived < since:
                    continue
                name = status if status in ("reserved", "paid") else "other_terminal"
                if name != "other_terminal" or status in TERMINAL:
                    series[name][min(n - 1, int(arrived - since))] += 1
        return {f"callbacks_{name}": counts for name, counts in series.items()}


def waits_by_acceptance(waits: list[Wait], bin_s: float = WAIT_BIN_S) -> list[JsonDict]:
    """The promised and the actual waits by when the orders were accepted, in `bin_s` bins
    from the first acceptance.
    Where a trailing drain rate lags a change of the real one, the error shows here."""
    if not waits:
        return []
    start = min(at for at, *_ in waits)
    bins: dict[int, list[Wait]] = {}
    for wait in waits:
        bins.setdefault(int((wait[0] - start) // bin_s), []).append(wait)
    out = []
    for index in sorted(bins):
        rows = bins[index]
        long = sorted(abs(est - act) / act for _, _, est, act in rows if act >= LONG_WAIT_S)
        positions = sorted(float(pos) for _, pos, _, _ in rows if pos is not None)
        out.append(
            {
                "t_s": index * bin_s,
                "orders": len(rows),
                "position_p50": percentile(positions, 50),
                "estimated_p50_s": percentile(sorted(est for _, _, est, _ in rows), 50),
                "actual_p50_s": percentile(sorted(act for *_, act in rows), 50),
                "long_waits": len(long),
                "long_wait_error_p90": percentile(long, 90),
            }
        )
    return out


def _drain_rates(waits: list[Wait]) -> JsonDict:
    """For the orders that waited 5 s or more: the drain rate their promise assumed (position /
    estimated wait) and the one they met (position / actual wait), medians."""
    long = [(pos, est, act) for _, pos, est, act in waits if act >= LONG_WAIT_S and pos]
    assumed = sorted(pos / est for pos, est, _ in long if est > 0)
    met = sorted(pos / act for pos, _, act in long)
    return {
        "long_wait_assumed_drain_per_s_p50": percentile(assumed, 50),
        "long_wait_actual_drain_per_s_p50": percentile(met, 50),
    }


def _seconds_between(start_iso: str, end_iso: str) -> float | None:
    try:
        return (datetime.fromisoformat(end_iso) - datetime.fromisoformat(start_iso)).total_seconds()
    except ValueError:
        return None
