"""Sandbox payment gateway: an in-memory provider that speaks API.md section 2.

Run it with ``python -m orders.gateway.sandbox`` or ``manage.py run_sandbox_gateway``.
The module imports no Django, so it starts in a fraction of a second and can run
beside the stack in tests and benchmarks.

What it does, in the order a request meets it:

1. Every route needs ``Authorization: Bearer <key>`` (401 otherwise).
2. ``/v1/`` routes take a token from a requests-per-second bucket (``quota_rps``,
   ``quota_burst``; 0 = unlimited). An empty bucket answers 429 with ``Retry-After``
   and records nothing.
3. POSTs need an ``Idempotency-Key`` and a valid JSON body (400 otherwise). A key
   names one request: the same key with another body (or on another endpoint) is
   a 422, the same key while its first request is still running is a 409, and a
   finished key replays its first 201 answer without charging again.
4. It sleeps ``latency_ms`` +/- ``latency_jitter_ms`` (asyncio, so any number of
   requests wait at once), then may answer 500/502/503 before doing anything
   (``error_rate``; the key is released, so a retry runs afresh).
5. It records the charge or refund, then may answer 500 instead of the result
   (``error_after_charge_rate``) or close the connection without an answer
   (``drop_rate``). The result stays stored under the key, so a retry with the
   same key, or ``GET /v1/charges?reference=``, tells the truth.

Control routes under ``/_sandbox/`` (same key, no quota, no faults) read and change
the fault settings, show the ledger and reset it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import re
import secrets
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Final, TypeGuard

from aiohttp import web

logger = logging.getLogger("orders.gateway.sandbox")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8765
# The published sandbox key, not a secret: the sandbox guards nothing of value.
DEFAULT_KEY: Final = "sandbox-key"
KEY_ENV_VAR: Final = "PAYMENT_GATEWAY_KEY"

CURRENCY: Final = "CNY"
MAX_LATENCY_MS: Final = 600_000
MAX_KEY_LENGTH: Final = 255
MAX_REFERENCE_LENGTH: Final = 255
CUSTOMER_RE: Final = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
DECLINE_PREFIX: Final = "decline"
INJECTED_ERROR_STATUSES: Final = (
    HTTPStatus.INTERNAL_SERVER_ERROR,
    HTTPStatus.BAD_GATEWAY,
    HTTPStatus.SERVICE_UNAVAILABLE,
)

JsonObject = dict[str, object]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxConfig:
    """The settable behaviour of the sandbox; see the module docstring for each field."""

    latency_ms: float = 20
    latency_jitter_ms: float = 0
    decline_rate: float = 0.0
    error_rate: float = 0.0
    error_after_charge_rate: float = 0.0
    drop_rate: float = 0.0
    quota_rps: float = 0.0
    quota_burst: int = 0


CONFIG_FIELDS: Final = frozenset(f.name for f in fields(SandboxConfig))
RATE_FIELDS: Final = frozenset(
    {"decline_rate", "error_rate", "error_after_charge_rate", "drop_rate"}
)


class InvalidInputError(Exception):
    """Input failed validation; ``fields`` maps each bad field to a sentence."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in fields.items()))
        self.fields = dict(fields)


def _is_number(value: object) -> TypeGuard[float]:
    """True for a finite JSON number; booleans are not numbers here (API.md conventions)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> TypeGuard[int]:
    """True for a JSON integer, not a bool and not a float that happens to be whole."""
    return isinstance(value, int) and not isinstance(value, bool)


def _config_value_problem(name: str, value: object) -> str | None:
    """Return why ``value`` is not acceptable for config field ``name``, or None."""
    if name not in CONFIG_FIELDS:
        return "unknown setting"
    if name == "quota_burst":
        ok = _is_int(value) and value >= 0
        return None if ok else "must be an integer >= 0 (0 = derived from quota_rps)"
    if not _is_number(value):
        return "must be a number"
    if name in RATE_FIELDS:
        return None if 0 <= value <= 1 else "must be a probability between 0 and 1"
    if name in {"latency_ms", "latency_jitter_ms"}:
        return None if 0 <= value <= MAX_LATENCY_MS else f"must be between 0 and {MAX_LATENCY_MS}"
    return None if value >= 0 else "must be >= 0 (0 = unlimited)"


def config_update(config: SandboxConfig, changes: Mapping[str, object]) -> SandboxConfig:
    """Return ``config`` with ``changes`` applied; all-or-nothing.

    Raises InvalidInputError naming every unknown field and bad value.
    """
    problems = {
        name: problem
        for name, value in changes.items()
        if (problem := _config_value_problem(name, value)) is not None
    }
    if problems:
        raise InvalidInputError(problems)
    return replace(config, **changes)  # type: ignore[arg-type]  # checked field by field above


# --- quota -------------------------------------------------------------------------------


class TokenBucket:
    """Requests-per-second quota: ``rate`` tokens a second, at most ``burst`` saved up.

    A rate of 0 means unlimited. A burst of 0 means "one second's worth" (at least 1).
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.capacity = float(burst if burst > 0 else max(1, math.ceil(rate)))
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()

    def take(self) -> float:
        """Take one token. Return 0.0 on success, else the seconds until one is due."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


# --- ledger ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A status and JSON body, as stored for idempotent replay."""

    status: int
    body: JsonObject


@dataclass
class KeyEntry:
    """One idempotency key: what it was used for, and its answer once it has one."""

    fingerprint: str
    answer: Answer | None = None  # None while the first request is in flight


@dataclass
class Stats:
    """Counters over ``/v1/`` traffic since start-up or the last reset."""

    requests: int = 0
    charges_succeeded: int = 0
    charges_declined: int = 0
    refunds: int = 0
    http_409: int = 0
    http_429: int = 0
    http_5xx: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class Charge:
    """A recorded charge; ``asdict`` of it is the 201 body."""

    id: str
    status: str  # "succeeded" | "declined"
    amount: int
    currency: str
    reference: str
    customer: str
    created_at: str


@dataclass(frozen=True)
class Refund:
    """A recorded refund; ``asdict`` of it is the 201 body."""

    id: str
    charge: str
    amount: int
    currency: str
    status: str
    created_at: str


@dataclass
class Ledger:
    """Everything the sandbox remembers. A reset swaps in a fresh Ledger, so requests
    still in flight finish against the old one and cannot leak into the new."""

    charges: dict[str, Charge] = field(default_factory=dict)  # insertion = time order
    refunded: dict[str, int] = field(default_factory=dict)  # charge id -> fen refunded
    refunds: list[Refund] = field(default_factory=list)
    keys: dict[str, KeyEntry] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)

    def refundable(self, charge: Charge) -> int:
        """Fen of ``charge`` that can still be refunded; a declined charge moved none."""
        if charge.status != "succeeded":
            return 0
        return charge.amount - self.refunded.get(charge.id, 0)

    def charge_view(self, charge: Charge) -> JsonObject:
        """The charge as listed, with how much of it has been refunded."""
        return {**asdict(charge), "amount_refunded": self.refunded.get(charge.id, 0)}

    def charges_for(self, reference: str) -> list[JsonObject]:
        """All charges made for ``reference``, oldest first."""
        return [self.charge_view(c) for c in self.charges.values() if c.reference == reference]

    def snapshot(self) -> JsonObject:
        """The ``GET /_sandbox/ledger`` body."""
        return {
            "charges": [self.charge_view(c) for c in self.charges.values()],
            "refunds": [asdict(r) for r in self.refunds],
            "stats": asdict(self.stats),
        }


# The ledger a request started with, pinned by the middleware: each aiohttp request
# runs in its own task, so a reset mid-request cannot split it across two ledgers.
current_ledger: ContextVar[Ledger] = ContextVar("current_ledger")


@dataclass(frozen=True)
class ChargeIn:
    """A validated ``POST /v1/charges`` body."""

    amount: int
    currency: str
    reference: str
    customer: str


@dataclass(frozen=True)
class RefundIn:
    """A validated ``POST /v1/refunds`` body."""

    charge: str
    amount: int


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _unknown_fields(payload: Mapping[str, object], allowed: frozenset[str]) -> dict[str, str]:
    return {name: "unknown field" for name in payload if name not in allowed}


class _BodyReader:
    """Reads typed fields from a JSON object, collecting every problem before failing."""

    def __init__(self, payload: Mapping[str, object], allowed: frozenset[str]) -> None:
        self._payload = payload
        self.problems = _unknown_fields(payload, allowed)

    def positive_int(self, name: str) -> int:
        value = self._payload.get(name)
        if _is_int(value) and value > 0:
            return value
        self.problems[name] = "must be an integer number of fen greater than 0"
        return 0

    def text(self, name: str, pattern: re.Pattern[str], problem: str) -> str:
        value = self._payload.get(name)
        if isinstance(value, str) and pattern.fullmatch(value):
            return value
        self.problems[name] = problem
        return ""

    def check(self) -> None:
        """Raise InvalidInputError if any field was bad."""
        if self.problems:
            raise InvalidInputError(self.problems)


_ANY_TEXT: Final = re.compile(rf".{{1,{MAX_REFERENCE_LENGTH}}}", re.DOTALL)


def parse_charge(payload: Mapping[str, object]) -> ChargeIn:
    """Validate a charge body. Raises InvalidInputError listing every bad field."""
    body = _BodyReader(payload, frozenset({"amount", "currency", "reference", "customer"}))
    charge = ChargeIn(
        amount=body.positive_int("amount"),
        currency=body.text("currency", re.compile(CURRENCY), f'must be "{CURRENCY}"'),
        reference=body.text(
            "reference", _ANY_TEXT, f"must be a string of 1-{MAX_REFERENCE_LENGTH} characters"
        ),
        customer=body.text(
            "customer", CUSTOMER_RE, "must be 1-64 characters of A-Z a-z 0-9 _ . : -"
        ),
    )
    body.check()
    return charge


def parse_refund(payload: Mapping[str, object]) -> RefundIn:
    """Validate a refund body. Raises InvalidInputError listing every bad field."""
    body = _BodyReader(payload, frozenset({"charge", "amount"}))
    refund = RefundIn(
        charge=body.text("charge", _ANY_TEXT, "must be a charge id"),
        amount=body.positive_int("amount"),
    )
    body.check()
    return refund


def parse_reset(payload: Mapping[str, object]) -> bool:
    """Validate a reset body; return whether to restore the start-up config."""
    problems = _unknown_fields(payload, frozenset({"config"}))
    restore = payload.get("config", False)
    if not isinstance(restore, bool):
        problems["config"] = "must be a boolean"
    if problems:
        raise InvalidInputError(problems)
    return bool(restore)


def _fingerprint(path: str, body: ChargeIn | RefundIn) -> str:
    # Canonical JSON of the validated body, so key order and spacing don't count as a change.
    return json.dumps([path, asdict(body)], sort_keys=True)


# --- HTTP helpers ------------------------------------------------------------------------


def error_response(
    status: int,
    code: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> web.Response:
    """The contract's error envelope: ``{"error": code, "detail": sentence, ...extra}``."""
    return web.json_response(
        {"error": code, "detail": detail, **extra}, status=status, headers=headers
    )


def _invalid(exc: InvalidInputError) -> web.Response:
    return error_response(400, "invalid", "The request is not valid.", fields=exc.fields)


async def _json_object(request: web.Request, *, optional: bool = False) -> JsonObject:
    """Read the body as a JSON object. Raises InvalidInputError for anything else.

    With ``optional``, an empty body reads as ``{}``.
    """
    raw = await request.read()
    if optional and not raw.strip():
        return {}
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInputError({"body": "must be a JSON object"}) from None
    if not isinstance(payload, dict):
        raise InvalidInputError({"body": "must be a JSON object"})
    return payload


_HTTP_ERRORS: Final = {
    404: ("not_found", "There is no such route."),
    405: ("method_not_allowed", "This route does not take that method."),
    413: ("body_too_large", "The request body is too large."),
}


def _count_status(stats: Stats, status: int) -> None:
    if status == HTTPStatus.CONFLICT:
        stats.http_409 += 1
    elif status == HTTPStatus.TOO_MANY_REQUESTS:
        stats.http_429 += 1
    elif status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        stats.http_5xx += 1


class DroppedResponse(web.Response):
    """A response never to be sent: the middleware closes the connection instead."""


# --- the gateway -------------------------------------------------------------------------


class SandboxGateway:
    """The sandbox's state and request handlers. One instance per event loop."""

    def __init__(
        self, *, api_key: str, config: SandboxConfig, rng: random.Random | None = None
    ) -> None:
        self._expected_auth = f"Bearer {api_key}".encode()
        self.startup_config = config
        self.config = config
        self.ledger = Ledger()
        self.bucket = TokenBucket(config.quota_rps, config.quota_burst)
        # Fault injection and declines only need to be unpredictable, not secret.
        self._rng = rng or random.Random()  # noqa: S311

    # configuration and faults

    def set_config(self, config: SandboxConfig) -> None:
        """Adopt ``config``; a quota change starts a full bucket."""
        if (config.quota_rps, config.quota_burst) != (
            self.config.quota_rps,
            self.config.quota_burst,
        ):
            self.bucket = TokenBucket(config.quota_rps, config.quota_burst)
        self.config = config

    def _roll(self, probability: float) -> bool:
        return probability > 0 and self._rng.random() < probability

    async def _sleep_latency(self) -> None:
        base, jitter = self.config.latency_ms, self.config.latency_jitter_ms
        delay_ms = max(0.0, base + self._rng.uniform(-jitter, jitter)) if jitter else base
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)

    def _injected_error(self) -> web.Response | None:
        """A 5xx answered before any work, with probability ``error_rate``."""
        if not self._roll(self.config.error_rate):
            return None
        status = self._rng.choice(INJECTED_ERROR_STATUSES)
        return error_response(status, "gateway_error", "Injected failure; nothing was processed.")

    def _deliver(self, answer: Answer) -> web.Response:
        """Send a stored 201 answer, unless a post-processing fault takes its place."""
        if self._roll(self.config.error_after_charge_rate):
            return error_response(
                500, "gateway_error", "Injected failure after processing; the outcome is unknown."
            )
        if self._roll(self.config.drop_rate):
            return DroppedResponse(status=answer.status)
        return web.json_response(answer.body, status=answer.status)

    # admission

    def _auth_problem(self, request: web.Request) -> web.Response | None:
        given = request.headers.get("Authorization", "").encode()
        if secrets.compare_digest(given, self._expected_auth):
            return None
        return error_response(401, "unauthorized", "A valid Authorization: Bearer key is needed.")

    def _quota_problem(self) -> web.Response | None:
        wait = self.bucket.take()
        if wait <= 0:
            return None
        retry_after = max(1, math.ceil(wait))
        return error_response(
            429,
            "quota_exceeded",
            "Over the requests-per-second quota; retry later.",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )

    def _admit(self, request: web.Request) -> web.Response | None:
        """Auth, then quota: the refusal to send, or None to go on."""
        # Explicit None checks throughout: an aiohttp response is a MutableMapping, and
        # an empty one is falsy, so `refusal or ...` would wave a 401 through.
        refusal = self._auth_problem(request)
        return refusal if refusal is not None else self._quota_problem()

    @staticmethod
    def _idempotency_key(request: web.Request) -> str:
        key = request.headers.get("Idempotency-Key", "")
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            raise InvalidInputError(
                {"Idempotency-Key": f"header required, 1-{MAX_KEY_LENGTH} characters"}
            )
        return key

    # the idempotent write path shared by charges and refunds

    async def _run_once(
        self, *, key: str, fingerprint: str, work: Callable[[Ledger], Answer]
    ) -> web.Response:
        """Run ``work`` at most once per idempotency key and answer with its result.

        Only a 201 is stored for replay; a refusal (404/422) or an injected early 5xx
        releases the key, because nothing was recorded under it.
        """
        ledger = current_ledger.get()
        known = ledger.keys.get(key)
        if known is not None:
            return await self._replay(known, fingerprint)
        entry = ledger.keys[key] = KeyEntry(fingerprint)
        try:
            # Sleep while holding the key, so concurrent duplicates meet the in-flight 409.
            await self._sleep_latency()
            if (failure := self._injected_error()) is not None:
                return failure
            answer = work(ledger)
            if answer.status == HTTPStatus.CREATED:
                entry.answer = answer
        finally:
            if entry.answer is None and ledger.keys.get(key) is entry:
                del ledger.keys[key]
        if answer.status != HTTPStatus.CREATED:
            return web.json_response(answer.body, status=answer.status)
        return self._deliver(answer)

    async def _replay(self, known: KeyEntry, fingerprint: str) -> web.Response:
        if known.fingerprint != fingerprint:
            return error_response(
                422, "idempotency_key_reused", "This Idempotency-Key was used for another request."
            )
        if known.answer is None:
            return error_response(
                409, "idempotency_key_in_flight", "A request with this Idempotency-Key is running."
            )
        await self._sleep_latency()
        failure = self._injected_error()
        return failure if failure is not None else self._deliver(known.answer)

    def _charge_work(self, charge: ChargeIn) -> Callable[[Ledger], Answer]:
        def work(ledger: Ledger) -> Answer:
            declined = charge.customer.startswith(DECLINE_PREFIX) or self._roll(
                self.config.decline_rate
            )
            record = Charge(
                id=f"ch_{secrets.token_hex(12)}",
                status="declined" if declined else "succeeded",
                amount=charge.amount,
                currency=charge.currency,
                reference=charge.reference,
                customer=charge.customer,
                created_at=_now_iso(),
            )
            ledger.charges[record.id] = record
            if declined:
                ledger.stats.charges_declined += 1
            else:
                ledger.stats.charges_succeeded += 1
            return Answer(HTTPStatus.CREATED, asdict(record))

        return work

    @staticmethod
    def _refund_work(refund: RefundIn) -> Callable[[Ledger], Answer]:
        def work(ledger: Ledger) -> Answer:
            charge = ledger.charges.get(refund.charge)
            if charge is None:
                body: JsonObject = {"error": "charge_not_found", "detail": "No such charge."}
                return Answer(HTTPStatus.NOT_FOUND, body)
            available = ledger.refundable(charge)
            if refund.amount > available:
                detail = f"Only {available} fen of this charge can still be refunded."
                body = {"error": "refund_exceeds_charge", "detail": detail}
                return Answer(HTTPStatus.UNPROCESSABLE_ENTITY, body)
            record = Refund(
                id=f"re_{secrets.token_hex(12)}",
                charge=charge.id,
                amount=refund.amount,
                currency=charge.currency,
                status="succeeded",
                created_at=_now_iso(),
            )
            ledger.refunded[charge.id] = ledger.refunded.get(charge.id, 0) + refund.amount
            ledger.refunds.append(record)
            ledger.stats.refunds += 1
            return Answer(HTTPStatus.CREATED, asdict(record))

        return work

    # /v1/ handlers

    async def charge_create(self, request: web.Request) -> web.Response:
        """``POST /v1/charges``."""
        if (refusal := self._admit(request)) is not None:
            return refusal
        try:
            key = self._idempotency_key(request)
            charge = parse_charge(await _json_object(request))
        except InvalidInputError as exc:
            return _invalid(exc)
        return await self._run_once(
            key=key,
            fingerprint=_fingerprint(request.path, charge),
            work=self._charge_work(charge),
        )

    async def charge_list(self, request: web.Request) -> web.Response:
        """``GET /v1/charges?reference=``: that reference's charges, oldest first."""
        if (refusal := self._admit(request)) is not None:
            return refusal
        reference = request.query.get("reference", "")
        if not reference:
            return _invalid(InvalidInputError({"reference": "query parameter required"}))
        await self._sleep_latency()
        if (failure := self._injected_error()) is not None:
            return failure
        return web.json_response({"data": current_ledger.get().charges_for(reference)})

    async def refund_create(self, request: web.Request) -> web.Response:
        """``POST /v1/refunds``."""
        if (refusal := self._admit(request)) is not None:
            return refusal
        try:
            key = self._idempotency_key(request)
            refund = parse_refund(await _json_object(request))
        except InvalidInputError as exc:
            return _invalid(exc)
        return await self._run_once(
            key=key,
            fingerprint=_fingerprint(request.path, refund),
            work=self._refund_work(refund),
        )

    # /_sandbox/ control handlers: authenticated, but outside quota, faults and stats

    async def config_get(self, request: web.Request) -> web.Response:
        """``GET /_sandbox/config``: the current settings."""
        refusal = self._auth_problem(request)
        return refusal if refusal is not None else web.json_response(asdict(self.config))

    async def config_set(self, request: web.Request) -> web.Response:
        """``POST /_sandbox/config``: partial update; answers the full new settings."""
        if (refusal := self._auth_problem(request)) is not None:
            return refusal
        try:
            self.set_config(config_update(self.config, await _json_object(request)))
        except InvalidInputError as exc:
            return _invalid(exc)
        logger.info("sandbox config now %s", json.dumps(asdict(self.config)))
        return web.json_response(asdict(self.config))

    async def reset(self, request: web.Request) -> web.Response:
        """``POST /_sandbox/reset``: forget charges, refunds, keys and stats.

        ``{"config": true}`` also restores the start-up settings.
        """
        if (refusal := self._auth_problem(request)) is not None:
            return refusal
        try:
            restore_config = parse_reset(await _json_object(request, optional=True))
        except InvalidInputError as exc:
            return _invalid(exc)
        self.ledger = Ledger()
        if restore_config:
            self.set_config(self.startup_config)
        return web.json_response({"reset": True, "config": asdict(self.config)})

    async def ledger_get(self, request: web.Request) -> web.Response:
        """``GET /_sandbox/ledger``: every charge and refund, and the stats."""
        refusal = self._auth_problem(request)
        return refusal if refusal is not None else web.json_response(self.ledger.snapshot())

    # middleware

    async def observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Pin the ledger for the request, render every error in the envelope, count
        ``/v1/`` traffic, and carry out a dropped answer."""
        ledger = self.ledger
        current_ledger.set(ledger)
        counted = request.path.startswith("/v1/")
        if counted:
            ledger.stats.requests += 1
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own 404/405/413, in our envelope
            code, detail = _HTTP_ERRORS.get(exc.status, ("http_error", f"{exc.reason}."))
            response = error_response(exc.status, code, detail)
        except Exception:
            logger.exception("sandbox handler failed: %s %s", request.method, request.path)
            response = error_response(500, "internal_error", "The sandbox failed unexpectedly.")
        if counted and isinstance(response, DroppedResponse):
            ledger.stats.dropped += 1
            # Closing without a word is how a lost answer looks to the client; aiohttp
            # then fails to write the response and ignores that quietly.
            if request.transport is not None:
                request.transport.close()
        elif counted:
            _count_status(ledger.stats, response.status)
        return response


def build_app(gateway: SandboxGateway) -> web.Application:
    """The aiohttp application serving ``gateway``."""

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await gateway.observe(request, handler)

    app = web.Application(middlewares=[observe])
    app.router.add_post("/v1/charges", gateway.charge_create)
    app.router.add_get("/v1/charges", gateway.charge_list, allow_head=False)
    app.router.add_post("/v1/refunds", gateway.refund_create)
    app.router.add_get("/_sandbox/config", gateway.config_get, allow_head=False)
    app.router.add_post("/_sandbox/config", gateway.config_set)
    app.router.add_post("/_sandbox/reset", gateway.reset)
    app.router.add_get("/_sandbox/ledger", gateway.ledger_get, allow_head=False)
    return app


# --- running -----------------------------------------------------------------------------


async def serve(
    *,
    host: str,
    port: int,
    api_key: str,
    config: SandboxConfig,
    announce: Callable[[str], None],
) -> None:
    """Serve until SIGTERM or SIGINT, then close cleanly.

    ``announce`` gets one line with the URL once the port is bound.
    """
    gateway = SandboxGateway(api_key=api_key, config=config)
    # handler_cancellation=False: a client that gives up must not undo a charge in
    # progress, exactly as with a real provider. access_log=None: one line per request
    # would swamp a load test.
    runner = web.AppRunner(
        build_app(gateway), handler_cancellation=False, access_log=None, shutdown_timeout=2.0
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        announce(
            f"sandbox payment gateway listening on http://{bound_host}:{bound_port} "
            f"config={json.dumps(asdict(config))}"
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    announce("sandbox payment gateway stopped")


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _non_negative_number(text: str) -> float:
    # An int when the text is one, so the config reads back as 20, not 20.0.
    try:
        value: float = int(text)
    except ValueError:
        value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the options shared by ``main`` and the management command."""
    defaults = SandboxConfig()
    add = parser.add_argument
    add("--host", default=DEFAULT_HOST, help=f"interface to bind (default {DEFAULT_HOST})")
    add("--port", type=_non_negative_int, default=DEFAULT_PORT, help="port (default %(default)s)")
    add(
        "--key",
        default=os.environ.get(KEY_ENV_VAR, DEFAULT_KEY),
        help=f"API key clients must send as Bearer (default ${KEY_ENV_VAR} or {DEFAULT_KEY})",
    )
    add(
        "--latency-ms",
        type=_non_negative_number,
        default=defaults.latency_ms,
        help="time each answer takes, ms (default %(default)s)",
    )
    add(
        "--latency-jitter-ms",
        type=_non_negative_number,
        default=defaults.latency_jitter_ms,
        help="latency varies uniformly by +/- this many ms (default %(default)s)",
    )
    for name, what in (
        ("decline-rate", "share of charges declined at random"),
        ("error-rate", "share answered 500/502/503 before anything is recorded"),
        ("error-after-charge-rate", "share answered 500 after the charge is recorded"),
        ("drop-rate", "share whose answer is dropped (connection closed) after recording"),
    ):
        add(f"--{name}", type=_probability, default=0.0, help=f"{what} (0-1, default 0)")
    add(
        "--quota-rps",
        type=_non_negative_number,
        default=defaults.quota_rps,
        help="requests per second allowed on /v1/, 0 = unlimited (default 0)",
    )
    add(
        "--quota-burst",
        type=_non_negative_int,
        default=defaults.quota_burst,
        help="requests the quota lets through at once, 0 = one second's worth (default 0)",
    )


def config_from_options(options: Mapping[str, object]) -> SandboxConfig:
    """Build the start-up config from parsed options (argparse or Django, same dests).

    Raises InvalidInputError when a value is out of range.
    """
    return config_update(SandboxConfig(), {name: options[name] for name in CONFIG_FIELDS})


def run(
    *, host: str, port: int, key: str, config: SandboxConfig, announce: Callable[[str], None]
) -> None:
    """Serve until a stop signal; blocks. ``announce`` receives the start-up line."""
    asyncio.run(serve(host=host, port=port, api_key=key, config=config, announce=announce))


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``python -m orders.gateway.sandbox --help``."""
    parser = argparse.ArgumentParser(
        prog="python -m orders.gateway.sandbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_options(vars(args))
    except InvalidInputError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    run(host=args.host, port=args.port, key=args.key, config=config, announce=logger.info)


if __name__ == "__main__":
    main()
