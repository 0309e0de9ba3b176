"""The long soak's side of the load generator (docs/soak.md): an open-loop offer
at a fixed rate over a pool of keep-alive connections that stops once N orders were
accepted, run in the background so that the orchestrator can ask for figures while it runs,
and those figures for a window of time. A mixin of LoadGenerator (bench/load/generator.py),
kept apart so that the generator's own modes are untouched.

Pacing: request i is due at start + i / rate; each of `connections` loops on one kept-alive
session takes the next due slot, waits for it and sends. When every connection is busy the
slots fall behind and their answers' latency (measured from the slot, as run_open does)
says so: the offer does not slow down with the server, up to the connections in flight. The
time-out runs from the send (run_open's from the slot): behind by more than the time-out, a
slot would be given no time at all, and a request that times out at the client while the
server accepts it is an order the soak cannot follow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from itertools import takewhile
from typing import TYPE_CHECKING

import aiohttp

from bench.load.jobs import RETRY_AFTER_CAP_S, Accepted, Job, JsonDict, Result, percentile

# Answers and acceptances are recorded in (nearly) the order they happened; a window's scan
# from the newest back stops this far before the window, past any reordering.
SCAN_SLACK_S = 5.0
# A slot sent later than this after it was due counts as late: every connection was busy.
LATE_S = 0.1


class Paced:
    """run_paced, and the commands that start it, follow it and read a window's figures."""

    results: list[Result]
    accepted: dict[str, Accepted]
    callbacks: dict[str, dict[str, tuple[float, str, str]]]
    paced_state: JsonDict
    background: asyncio.Future[JsonDict] | None = None

    if TYPE_CHECKING:  # LoadGenerator's own

        async def _send(
            self, job: Job, timeout: float, session: aiohttp.ClientSession | None = None
        ) -> Result: ...

        async def run(self, spec: JsonDict) -> JsonDict: ...

    async def run_paced(self, spec: JsonDict) -> None:
        """`spec`: rate (new orders a second; replays are sent on top, at replay_share of
        the requests), orders (stop once this many were accepted; 0: none), connections,
        timeout and one step whose duration is the longest the offer may take. The step's
        duration becomes the time the offer took."""

        timeout = float(spec["timeout"])
        replay_share = float(spec.get("replay_share") or 0)
        replay_every = round(1 / replay_share) if replay_share else 0
        interval = (1 - replay_share) / float(spec["rate"])
        target = int(spec.get("orders") or 0)
        step = spec["steps"][0]
        start = time.time() + 0.05
        until = start + float(step["duration"])
        step["t_start"] = start
        state = self.paced_state = {
            "next": 0,
            "accepted": 0,
            "requests": 0,
            "late": 0,
            "max_late_s": 0.0,
            "stop": "",
            "t_start": start,
        }

        def stopped() -> bool:
            if target and state["accepted"] >= target:
                state["stop"] = state["stop"] or "orders"
            return bool(state["stop"])

        async def loop(session: aiohttp.ClientSession) -> None:
            while not stopped():
                slot = state["next"]
                state["next"] += 1
                due = start + slot * interval
                if due >= until:
                    state["stop"] = "duration"
                    return
                delay = due - time.time()
                if delay > 0.0005:  # noqa: PLR2004
                    await asyncio.sleep(delay)
                if stopped():
                    return
                late = time.time() - due
                if late > LATE_S:
                    state["late"] += 1
                    state["max_late_s"] = max(state["max_late_s"], late)
                replay = bool(replay_every) and (slot + 1) % replay_every == 0
                job = Job(spec["phase"], 0, due, spec["kind"], replay)
                state["requests"] += 1
                # The time-out runs from the send: a pool whose connections were all busy
                # sends late, and a request sent 9 s late must not get 1 s (it would time out
                # at the client after the server accepted it). Latency still counts from due.
                result = await self._send(job, timeout + max(0.0, late), session)
                state["accepted"] += result.accepted
                if result.error == "no_coupon":
                    state["stop"] = "no_coupon"
                    return
                if result.retry_after:
                    await asyncio.sleep(min(result.retry_after, RETRY_AFTER_CAP_S))

        connections = int(spec["connections"])
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector, raise_for_status=False) as session:
            await asyncio.gather(*(loop(session) for _ in range(connections)))
        step["t_end"] = time.time()
        step["duration"] = step["t_end"] - start
        step["rate"] = float(spec["rate"])

    # --- commands -------------------------------------------------------------------------

    def cmd_start(self, command: JsonDict) -> JsonDict:
        """Start a run in the background; `progress` follows it and returns its summary."""
        self.paced_state = {"accepted": 0, "requests": 0, "late": 0, "stop": ""}
        self.background = asyncio.ensure_future(self.run(command["spec"]))
        return {"started": time.time()}

    def cmd_progress(self, command: JsonDict) -> JsonDict:
        """The running offer's counters; once it ended, its summary (or its error)."""
        state = getattr(self, "paced_state", {})
        answer: JsonDict = {k: v for k, v in state.items() if k != "next"}
        task = self.background
        answer["done"] = task is not None and task.done()
        if task is not None and task.done():
            exc = task.exception()
            if exc is not None:
                return {"error": f"{type(exc).__name__}: {exc}"}
            answer["summary"] = task.result()
        return answer

    def cmd_window(self, command: JsonDict) -> JsonDict:
        """The order figures of [start, end): see window_orders. Scans from the newest
        record back, so a window near the end costs only its own records."""
        start, end = float(command["start"]), float(command["end"])
        phase = command["phase"]
        results = takewhile(lambda r: r.done >= start - SCAN_SLACK_S, reversed(self.results))
        accepted = takewhile(
            lambda item: item[1].at >= start - SCAN_SLACK_S, reversed(self.accepted.items())
        )
        return window_orders(
            results=results,
            accepted=accepted,
            callbacks=self.callbacks,
            phase=phase,
            start=start,
            end=end,
        )


def window_orders(
    *,
    results: Iterable[Result],
    accepted: Iterable[tuple[str, Accepted]],
    callbacks: Mapping[str, Mapping[str, tuple[float, str, str]]],
    phase: str,
    start: float,
    end: float,
) -> JsonDict:
    """Of `phase`'s orders in [start, end): answers by arrival (202s, 429s, failures: 5xx
    and no answer), and of the orders accepted in it the time from the 202 to the `paid`
    callback (p50, p99, max), with how many were paid, ended otherwise, or had no final
    callback yet. Pure: no I/O, no clock."""
    counts = {"accepted": 0, "http_429": 0, "failed": 0, "requests": 0}
    for r in results:
        if r.phase != phase or r.kind != "orders" or not start <= r.done < end:
            continue
        counts["requests"] += 1
        counts["accepted"] += r.accepted
        counts["http_429"] += r.status == 429  # noqa: PLR2004
        counts["failed"] += r.status >= 500 or (not r.status and r.error != "no_coupon")  # noqa: PLR2004
    to_paid: list[float] = []
    other = pending = 0
    for order_id, acc in accepted:
        if acc.phase != phase or not start <= acc.at < end:
            continue
        seen = callbacks.get(order_id, {})
        if "paid" in seen:
            to_paid.append(seen["paid"][0] - acc.at)
        elif any(s in seen for s in ("rejected", "payment_failed", "expired", "cancelled")):
            other += 1
        else:
            pending += 1
    to_paid.sort()
    return {
        **counts,
        "paid": len(to_paid),
        "ended_otherwise": other,
        "no_final_yet": pending,
        "to_paid_p50_s": percentile(to_paid, 50),
        "to_paid_p99_s": percentile(to_paid, 99),
        "to_paid_max_s": to_paid[-1] if to_paid else None,
    }
