"""The load generator and the chatbot's callback receiver, in one asyncio process of its own.

`python -m bench.load --base-url ... --api-key ... --callback-port ...` reads one JSON command
per line on stdin and answers one JSON line on stdout (bench/loadclient.py is the other end).

Open loop: requests are scheduled at fixed spacing (1/rate) and handed to a bounded set of
connections whatever the server answers; a request waiting for a free connection keeps its
scheduled time, so its latency includes that wait (no coordinated omission). A request not
sent within the time-out of its scheduled time is counted `not_sent`; one sent but not
answered in time is `timeout`. Closed loop (the floors and saturation probes) is N
connections each sending the next request when the last is answered, like wrk.

The callback receiver (aiohttp server on 127.0.0.1) records the first arrival of each
status of each order, so accept-to-paid is measured from callbacks, never by polling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import resource
import sys
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

JsonDict = dict[str, Any]
SKUS_DEFAULT = ("BENCH-A", "BENCH-B", "BENCH-C", "BENCH-D")
TERMINAL = frozenset({"paid", "rejected", "payment_failed", "cancelled", "expired", "refunded"})


LONG_WAIT_S = 5.0  # the waits whose estimates are judged (issue 14)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def quantiles(values: list[float]) -> JsonDict:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else None,
    }


@dataclass
class Job:
    """One request to make: what, when it was due, and which step of which phase it is."""

    phase: str
    step: int
    due: float  # epoch seconds
    kind: str  # claims | orders | floor_get | floor_insert
    replay: bool = False


@dataclass
class Result:
    phase: str
    step: int
    kind: str
    due: float
    sent: float  # 0 when never sent
    done: float
    status: int  # HTTP status; 0 when no answer
    error: str  # "" or the error code / client-side failure
    replay: bool
    accepted: bool  # a new coupon (201) or a new order (202)


@dataclass
class Pool:
    """Customers holding a coupon and not yet used for an order: claimed over HTTP first,
    then seeded ranges (customer and code derived from the number, see bench/seed.py)."""

    claimed: deque[tuple[str, str]] = field(default_factory=deque)
    ranges: deque[tuple[int, int, int]] = field(default_factory=deque)  # start, end, decline

    def size(self) -> int:
        return len(self.claimed) + sum(end - start for start, end, _ in self.ranges)

    def take(self) -> tuple[str, str] | None:
        if self.claimed:
            return self.claimed.popleft()
        while self.ranges:
            start, end, decline_every = self.ranges[0]
            if start < end:
                self.ranges[0] = (start + 1, end, decline_every)
                return seeded_customer(start, decline_every), seeded_code(start)
            self.ranges.popleft()
        return None


def seeded_customer(n: int, decline_every: int) -> str:
    return f"decline-s-{n}" if decline_every and n % decline_every == 0 else f"s-{n}"


def seeded_code(n: int) -> str:
    return f"SEED{n:010d}"


@dataclass
class Accepted:
    """An order the API accepted (202), as the chatbot saw it."""

    phase: str
    at: float  # epoch seconds the 202 arrived
    estimated_wait: float | None
    position: int | None


class LoadGenerator:
    def __init__(self, *, base_url: str, api_key: str, callback_url: str, slug: str) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.callback_url = callback_url
        self.slug = slug
        self.skus: tuple[str, ...] = SKUS_DEFAULT
        self.decline_every = 50
        self.replay_share = 0.05
        self.pool = Pool()
        self.results: list[Result] = []
        self.accepted: dict[str, Accepted] = {}
        self.order_bodies: list[tuple[str, bytes, str]] = []  # key, body, order id (replays)
        self.claim_bodies: list[tuple[str, bytes, str]] = []  # key, body, code
        self.callbacks: dict[str, dict[str, tuple[float, str, str]]] = defaultdict(dict)
        self.callback_count = 0
        self.claim_counter = 0
        self.order_counter = 0
        self.schedule_lag: list[float] = []
        self.error_samples: dict[str, str] = {}  # the first answer of each error code
        self.rng = random.Random(7)  # noqa: S311  (picks which request to replay)
        self.started = time.time()
        self.session: aiohttp.ClientSession | None = None

    # --- the callback receiver ------------------------------------------------------------

    async def on_callback(self, request: web.Request) -> web.Response:
        arrived = time.time()
        try:
            doc = json.loads(await request.read())
            order_id, status = doc["id"], doc["status"]
        except (ValueError, KeyError, TypeError):
            return web.Response(status=400)
        self.callback_count += 1
        seen = self.callbacks[order_id]
        if status not in seen:
            seen[status] = (arrived, doc.get("updated_at") or "", doc.get("created_at") or "")
        return web.Response(status=200)

    # --- requests ---------------------------------------------------------------------------

    def _headers(self, key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {self.api_key}"
            headers["Idempotency-Key"] = key
        return headers

    def _request(self, job: Job) -> tuple[str, str, bytes | None, dict[str, str], Any]:
        """(method, url, body, headers, context) for a job, built when it is sent."""
        if job.kind == "floor_get":
            return "GET", f"{self.base_url}/bench/floor/get/", None, {}, None
        if job.kind == "floor_insert":
            self.order_counter += 1
            body = json.dumps({"name": "floor", "value": self.order_counter}).encode()
            return "POST", f"{self.base_url}/bench/floor/insert/", body, self._headers(None), None
        if job.kind == "claims":
            return self._claim_request(job)
        return self._order_request(job)

    def _claim_request(self, job: Job) -> tuple[str, str, bytes | None, dict[str, str], Any]:
        url = f"{self.base_url}/api/v1/campaigns/{self.slug}/claims/"
        if job.replay and self.claim_bodies:
            key, body, code = self.rng.choice(self.claim_bodies[-2000:])
            return "POST", url, body, self._headers(key), ("replay", code)
        job.replay = False
        n = self.claim_counter
        self.claim_counter += 1
        customer = f"decline-c-{n}" if n % self.decline_every == 0 else f"c-{n}"
        key = f"claim-{customer}"
        body = json.dumps({"customer_id": customer}).encode()
        return "POST", url, body, self._headers(key), ("new", customer, key, body)

    def _order_request(self, job: Job) -> tuple[str, str, bytes | None, dict[str, str], Any]:
        url = f"{self.base_url}/api/v1/orders/"
        if job.replay and self.order_bodies:
            key, body, order_id = self.rng.choice(self.order_bodies[-2000:])
            return "POST", url, body, self._headers(key), ("replay", order_id)
        job.replay = False
        holder = self.pool.take()
        if holder is None:
            return "", "", None, {}, ("no_coupon",)
        customer, code = holder
        sku = self.skus[self.order_counter % len(self.skus)]
        self.order_counter += 1
        key = f"order-{customer}"
        body = json.dumps(
            {
                "customer_id": customer,
                "items": [{"sku": sku, "quantity": 1}],
                "coupon_code": code,
                "callback_url": self.callback_url,
            }
        ).encode()
        return "POST", url, body, self._headers(key), ("new", customer, key, body)

    async def _send(self, job: Job, timeout: float) -> None:
        assert self.session is not None  # noqa: S101
        method, url, body, headers, context = self._request(job)
        if context == ("no_coupon",):
            self._record(job, 0.0, time.time(), 0, "no_coupon", accepted=False)
            return
        sent = time.time()
        left = timeout - (sent - job.due)
        if left <= 0:
            self._record(job, 0.0, sent, 0, "not_sent", accepted=False)
            if context and context[0] == "new":
                self._give_back(job, context)
            return
        raw = b""
        try:
            async with self.session.request(
                method, url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=left)
            ) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError:
            self._record(job, sent, time.time(), 0, "timeout", accepted=False)
            return
        except aiohttp.ClientError as exc:
            self._record(job, sent, time.time(), 0, type(exc).__name__, accepted=False)
            return
        done = time.time()
        error, accepted = self._judge(job, status, raw, context, done)
        self._record(job, sent, done, status, error, accepted=accepted)

    def _give_back(self, job: Job, context: tuple[Any, ...]) -> None:
        """A new order never sent returns its customer to the pool (the coupon is unused)."""
        if job.kind == "orders":
            body = json.loads(context[3])
            self.pool.claimed.appendleft((body["customer_id"], body["coupon_code"]))

    def _judge(
        self, job: Job, status: int, raw: bytes, context: Any, done: float
    ) -> tuple[str, bool]:
        """The error code of an answer ("" when it is what the contract promises), and
        whether it accepted something new."""
        ok = (201,) if job.kind in ("claims", "floor_insert") else (200,)
        if job.kind == "orders":
            ok = (200,) if job.replay else (202,)
        doc: JsonDict = {}
        if raw and (status >= 400 or job.kind in ("claims", "orders")):  # noqa: PLR2004
            with contextlib.suppress(ValueError):
                doc = json.loads(raw)
        if status not in ok:
            code = str(doc.get("error") or f"http_{status}")
            self.error_samples.setdefault(code, raw[:400].decode(errors="replace"))
            return code, False
        if job.kind == "claims":
            if context[0] == "replay":
                return ("" if doc.get("code") == context[1] else "replay_mismatch"), False
            _, customer, key, body = context
            self.pool.claimed.append((customer, doc["code"]))
            self.claim_bodies.append((key, body, doc["code"]))
            return "", True
        if job.kind == "orders":
            if context[0] == "replay":
                return ("" if doc.get("id") == context[1] else "replay_mismatch"), False
            _, _customer, key, body = context
            queue = doc.get("queue") or {}
            self.accepted[doc["id"]] = Accepted(
                phase=job.phase,
                at=done,
                estimated_wait=queue.get("estimated_wait_seconds"),
                position=queue.get("position"),
            )
            self.order_bodies.append((key, body, doc["id"]))
            return "", True
        return "", True  # a floor answered as it should

    def _record(
        self, job: Job, sent: float, done: float, status: int, error: str, *, accepted: bool
    ) -> None:
        self.results.append(
            Result(
                phase=job.phase,
                step=job.step,
                kind=job.kind,
                due=job.due,
                sent=sent,
                done=done,
                status=status,
                error=error,
                replay=job.replay,
                accepted=accepted,
            )
        )

    # --- phases -------------------------------------------------------------------------------

    async def run_open(self, spec: JsonDict) -> None:
        """Fixed-spacing schedule over the steps; `connections` requests at most in flight."""
        queue: asyncio.Queue[Job | None] = asyncio.Queue()
        timeout = float(spec["timeout"])
        workers = [
            asyncio.create_task(self._open_worker(queue, timeout))
            for _ in range(int(spec["connections"]))
        ]
        replay_every = round(1 / spec["replay_share"]) if spec.get("replay_share") else 0
        start = time.time() + 0.05
        n_total = 0
        for step_index, step in enumerate(spec["steps"]):
            rate, duration = float(step["rate"]), float(step["duration"])
            step["t_start"], step["t_end"] = start, start + duration
            count = int(rate * duration)
            for i in range(count):
                due = start + i / rate
                delay = due - time.time()
                if delay > 0.0005:  # noqa: PLR2004
                    await asyncio.sleep(delay)
                self.schedule_lag.append(max(0.0, time.time() - due))
                n_total += 1
                replay = bool(replay_every) and n_total % replay_every == 0
                queue.put_nowait(Job(spec["phase"], step_index, due, spec["kind"], replay))
            start += duration
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)

    async def _open_worker(self, queue: asyncio.Queue[Job | None], timeout: float) -> None:
        while (job := await queue.get()) is not None:
            await self._send(job, timeout)

    async def run_closed(self, spec: JsonDict) -> None:
        """`connections` loops, each sending its next request as soon as one is answered."""
        timeout = float(spec["timeout"])
        replay_every = round(1 / spec["replay_share"]) if spec.get("replay_share") else 0
        counter = 0

        async def loop(until: float, step_index: int) -> None:
            nonlocal counter
            while time.time() < until:
                counter += 1
                replay = bool(replay_every) and counter % replay_every == 0
                job = Job(spec["phase"], step_index, time.time(), spec["kind"], replay)
                await self._send(job, timeout)

        for step_index, step in enumerate(spec["steps"]):
            step["t_start"] = time.time()
            until = step["t_end"] = step["t_start"] + float(step["duration"])
            await asyncio.gather(
                *(loop(until, step_index) for _ in range(int(spec["connections"])))
            )

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

    async def run(self, spec: JsonDict) -> JsonDict:
        wall, cpu = time.time(), time.process_time()
        if spec["kind"] == "orders":
            self.skus = tuple(spec.get("skus") or self.skus)
        self.decline_every = int(spec.get("decline_every", self.decline_every))
        if spec["mode"] == "open":
            await self.run_open(spec)
        else:
            await self.run_closed(spec)
        return self.summary(spec["phase"], spec, time.time() - wall, time.process_time() - cpu)

    # --- what happened to the accepted orders ------------------------------------------------

    def orders_report(self, phases: list[str]) -> JsonDict:
        """Per phase: terminal outcomes by callback, accept→paid, estimated versus actual wait."""
        report: JsonDict = {}
        for phase in phases:
            mine = {oid: a for oid, a in self.accepted.items() if a.phase == phase}
            outcomes: Counter[str] = Counter()
            to_paid, to_terminal, estimated, actual, error = [], [], [], [], []
            relative: list[float] = []
            within = 0
            for oid, acc in mine.items():
                seen = self.callbacks.get(oid, {})
                final = next((s for s in seen if s in TERMINAL), None)
                outcomes[final or "no_terminal_callback"] += 1
                if "paid" in seen:
                    to_paid.append(seen["paid"][0] - acc.at)
                if final:
                    to_terminal.append(seen[final][0] - acc.at)
                # When "reserved" was coalesced into "paid" (one callback carries the latest
                # state), paid marks leaving the line, late by the charge's latency at most.
                left_line = (
                    seen.get("reserved")
                    or seen.get("paid")
                    or (seen.get("rejected") if final else None)
                )
                if left_line and acc.estimated_wait is not None:
                    waited = _seconds_between(left_line[2], left_line[1])
                    if waited is not None:
                        estimated.append(float(acc.estimated_wait))
                        actual.append(waited)
                        error.append(waited - acc.estimated_wait)
                        within += waited <= acc.estimated_wait + 1
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

    async def handle(self, command: JsonDict) -> JsonDict:
        """One command from the orchestrator (bench/loadclient.py), answered as a dict."""
        cmd = command["cmd"]
        if cmd == "run":
            return await self.run(command["spec"])
        handler = getattr(self, f"cmd_{cmd}", None)
        if handler is None:
            return {"error": f"unknown command {cmd!r}"}
        answer: JsonDict = handler(command)
        return answer

    def cmd_add_seeded(self, command: JsonDict) -> JsonDict:
        start, count = int(command["start"]), int(command["count"])
        self.pool.ranges.append((start, start + count, int(command["decline_every"])))
        return {"pool": self.pool.size()}

    def cmd_clear_pool(self, command: JsonDict) -> JsonDict:
        self.pool = Pool()
        return {"pool": 0}

    def cmd_pool(self, command: JsonDict) -> JsonDict:
        return {"pool": self.pool.size(), "claimed": len(self.pool.claimed)}

    def cmd_callback_counts(self, command: JsonDict) -> JsonDict:
        """Callbacks by status that arrived in [start, end)."""
        start, end = float(command["start"]), float(command["end"])
        counts: Counter[str] = Counter()
        for seen in self.callbacks.values():
            for status, (arrived, _, _) in seen.items():
                if start <= arrived < end:
                    counts[status] += 1
        return {"counts": dict(counts)}

    def cmd_orders_report(self, command: JsonDict) -> JsonDict:
        return self.orders_report(command["phases"])

    def cmd_accepted_ids(self, command: JsonDict) -> JsonDict:
        """Write the ids of the orders accepted in `phases` to `path`, one per line."""
        ids = [oid for oid, a in self.accepted.items() if a.phase in command["phases"]]
        Path(command["path"]).write_text("\n".join(ids))
        return {"count": len(ids)}

    def cmd_timeseries(self, command: JsonDict) -> JsonDict:
        return self.timeseries(float(command["since"]))

    def cmd_cpu(self, command: JsonDict) -> JsonDict:
        """This process's own CPU and memory: the load generator shares the cores."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "process_time_s": time.process_time(),
            "user_s": usage.ru_utime,
            "system_s": usage.ru_stime,
            "max_rss_kb": usage.ru_maxrss,
            "callbacks": self.callback_count,
        }


def _seconds_between(start_iso: str, end_iso: str) -> float | None:
    try:
        return (datetime.fromisoformat(end_iso) - datetime.fromisoformat(start_iso)).total_seconds()
    except ValueError:
        return None


async def serve(args: argparse.Namespace) -> None:
    gen = LoadGenerator(
        base_url=args.base_url,
        api_key=args.api_key,
        callback_url=f"http://127.0.0.1:{args.callback_port}/cb",
        slug=args.slug,
    )
    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/cb", gen.on_callback)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.callback_port, backlog=2048).start()
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    gen.session = aiohttp.ClientSession(connector=connector, raise_for_status=False)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _answer({"ready": True})
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if command.get("cmd") == "quit":
                _answer({"bye": True})
                break
            try:
                _answer(await gen.handle(command))
            except Exception as exc:  # answered, so the orchestrator can report it
                _answer({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        await gen.session.close()
        await runner.cleanup()


def _answer(payload: JsonDict) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--callback-port", type=int, required=True)
    parser.add_argument("--slug", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
