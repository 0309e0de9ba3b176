"""The load generator: the callback receiver, the requests (claims and orders, replays),
open and closed loops, and the commands the orchestrator sends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.load.figures import Figures
from bench.load.jobs import (
    RETRY_AFTER_CAP_S,
    SKUS_DEFAULT,
    Accepted,
    Job,
    JsonDict,
    Pool,
    Result,
)
from bench.load.minutes import order_minutes
from bench.load.paced import Paced


class LoadGenerator(Figures, Paced):
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

    async def _send(
        self, job: Job, timeout: float, session: aiohttp.ClientSession | None = None
    ) -> Result:
        """Send a job (on `session`, else the connection-per-request one) and record it."""
        session = session or self.session
        assert session is not None  # noqa: S101
        method, url, body, headers, context = self._request(job)
        if context == ("no_coupon",):
            return self._record(job, 0.0, time.time(), 0, "no_coupon", accepted=False)
        sent = time.time()
        left = timeout - (sent - job.due)
        if left <= 0:
            if context and context[0] == "new":
                self._give_back(job, context)
            return self._record(job, 0.0, sent, 0, "not_sent", accepted=False)
        raw = b""
        try:
            async with session.request(
                method, url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=left)
            ) as response:
                raw = await response.read()
                status = response.status
                retry_after = _retry_after(response) if status == 429 else 0.0  # noqa: PLR2004
        except TimeoutError:
            return self._record(job, sent, time.time(), 0, "timeout", accepted=False)
        except aiohttp.ClientError as exc:
            return self._record(job, sent, time.time(), 0, type(exc).__name__, accepted=False)
        done = time.time()
        error, accepted = self._judge(job, status, raw, context, done)
        return self._record(
            job, sent, done, status, error, accepted=accepted, retry_after=retry_after
        )

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
        self,
        job: Job,
        sent: float,
        done: float,
        status: int,
        error: str,
        *,
        accepted: bool,
        retry_after: float = 0.0,
    ) -> Result:
        result = Result(
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
            retry_after=retry_after,
        )
        self.results.append(result)
        return result

    # --- phases -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _pool(self, spec: JsonDict, size: int) -> AsyncIterator[aiohttp.ClientSession | None]:
        """The session a phase sends on: with `keepalive` in its spec (a pool's size), one of
        that many kept-alive connections, as a chatbot platform's HTTP pool; without, None: the
        connection-per-request session, the worst case for the server (a TCP handshake, an
        accept and a close per request)."""
        if not spec.get("keepalive"):
            yield None
            return
        connector = aiohttp.TCPConnector(limit=size)
        async with aiohttp.ClientSession(connector=connector, raise_for_status=False) as session:
            yield session

    async def run_open(self, spec: JsonDict) -> None:
        """Fixed-spacing schedule over the steps; `connections` requests at most in flight,
        over a new connection each or, with `keepalive`, a pool of that many kept-alive
        connections (a request due while all are busy waits for one, and that wait is in
        its latency, which runs from when it was due)."""
        async with self._pool(spec, int(spec.get("keepalive") or 0)) as session:
            await self._run_open(spec, session)

    async def _run_open(self, spec: JsonDict, session: aiohttp.ClientSession | None) -> None:
        queue: asyncio.Queue[Job | None] = asyncio.Queue()
        timeout = float(spec["timeout"])
        workers = [
            asyncio.create_task(self._open_worker(queue, timeout, session))
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

    async def _open_worker(
        self,
        queue: asyncio.Queue[Job | None],
        timeout: float,
        session: aiohttp.ClientSession | None,
    ) -> None:
        while (job := await queue.get()) is not None:
            await self._send(job, timeout, session)

    async def run_closed(self, spec: JsonDict) -> None:
        """`connections` loops, each sending its next request as soon as one is answered; with
        `keepalive`, each on a kept-alive connection of its own."""
        async with self._pool(spec, int(spec["connections"])) as session:
            await self._run_closed(spec, session)

    async def _run_closed(self, spec: JsonDict, session: aiohttp.ClientSession | None) -> None:
        timeout = float(spec["timeout"])
        replay_every = round(1 / spec["replay_share"]) if spec.get("replay_share") else 0
        counter = 0

        async def loop(until: float, step_index: int) -> None:
            nonlocal counter
            while time.time() < until:
                counter += 1
                replay = bool(replay_every) and counter % replay_every == 0
                job = Job(spec["phase"], step_index, time.time(), spec["kind"], replay)
                await self._send(job, timeout, session)

        for step_index, step in enumerate(spec["steps"]):
            step["t_start"] = time.time()
            until = step["t_end"] = step["t_start"] + float(step["duration"])
            await asyncio.gather(
                *(loop(until, step_index) for _ in range(int(spec["connections"])))
            )

    async def run_keepalive(self, spec: JsonDict) -> None:
        """A chatbot platform's HTTP pool: `connections` kept-alive connections (one session
        whose connector holds that many), each sending its next request as soon as the last is
        answered. After a 429 a connection waits what Retry-After asks, at most
        RETRY_AFTER_CAP_S, so that it keeps probing. A loop ends early when the pool of
        coupons is spent (its `no_coupon` is in the summary)."""
        timeout = float(spec["timeout"])
        connections = int(spec["connections"])
        replay_every = round(1 / spec["replay_share"]) if spec.get("replay_share") else 0
        counter = 0

        async def loop(session: aiohttp.ClientSession, until: float, step_index: int) -> None:
            nonlocal counter
            while time.time() < until:
                counter += 1
                replay = bool(replay_every) and counter % replay_every == 0
                job = Job(spec["phase"], step_index, time.time(), spec["kind"], replay)
                result = await self._send(job, timeout, session)
                if result.error == "no_coupon":
                    return
                if result.retry_after:
                    pause = min(result.retry_after, RETRY_AFTER_CAP_S, until - time.time())
                    await asyncio.sleep(max(0.0, pause))

        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector, raise_for_status=False) as session:
            for step_index, step in enumerate(spec["steps"]):
                step["t_start"] = time.time()
                until = step["t_end"] = step["t_start"] + float(step["duration"])
                loops = (loop(session, until, step_index) for _ in range(connections))
                await asyncio.gather(*loops)

    async def run(self, spec: JsonDict) -> JsonDict:
        wall, cpu = time.time(), time.process_time()
        if spec["kind"] == "orders":
            self.skus = tuple(spec.get("skus") or self.skus)
        self.decline_every = int(spec.get("decline_every", self.decline_every))
        base_url = self.base_url
        # `base_url` in a spec: this run only, elsewhere (one host of a cluster, past HAProxy).
        self.base_url = spec.get("base_url") or base_url
        try:
            if spec["mode"] == "open":
                await self.run_open(spec)
            elif spec["mode"] == "keepalive":
                await self.run_keepalive(spec)
            elif spec["mode"] == "paced":
                await self.run_paced(spec)
            else:
                await self.run_closed(spec)
        finally:
            self.base_url = base_url
        return self.summary(spec["phase"], spec, time.time() - wall, time.process_time() - cpu)

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

    def cmd_soak_minutes(self, command: JsonDict) -> JsonDict:
        """The soak's order figures per minute and its waits (bench/load/minutes.py)."""
        return order_minutes(
            results=self.results,
            accepted=self.accepted,
            callbacks=self.callbacks,
            phase=command["phase"],
            start=float(command["start"]),
            minutes=int(command["minutes"]),
        )

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


def _retry_after(response: aiohttp.ClientResponse) -> float:
    """Seconds a 429's Retry-After header asks for (0 when absent or not a number)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "0")))
    except ValueError:
        return 0.0
