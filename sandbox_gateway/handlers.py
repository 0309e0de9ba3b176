"""The sandbox's request handlers and middleware: admission (key, quota), the idempotent write
path that charges and refunds share, the injected faults, and the control routes."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from http import HTTPStatus
from typing import Final, TypeVar

from aiohttp import web

from sandbox_gateway.ledger import (
    Answer,
    ChargeIn,
    InvalidInputError,
    JsonObject,
    KeyEntry,
    Ledger,
    RefundIn,
    SandboxConfig,
    Stats,
    body_fingerprint,
    config_update,
    current_ledger,
    parse_charge,
    parse_refund,
    parse_reset,
)

logger = logging.getLogger("sandbox_gateway")

MAX_KEY_LENGTH: Final = 255
DECLINE_PREFIX: Final = "decline"
INJECTED_ERROR_STATUSES: Final = (
    HTTPStatus.INTERNAL_SERVER_ERROR,
    HTTPStatus.BAD_GATEWAY,
    HTTPStatus.SERVICE_UNAVAILABLE,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Body = TypeVar("Body", ChargeIn, RefundIn)


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

    async def _write(
        self,
        request: web.Request,
        parse: Callable[[Mapping[str, object]], Body],
        record: Callable[[Ledger, Body], Answer],
    ) -> web.Response:
        """A ``POST`` under ``/v1/``: admit, read the key and the body, then ``record`` it at
        most once per key."""
        if (refusal := self._admit(request)) is not None:
            return refusal
        try:
            key = self._idempotency_key(request)
            body = parse(await _json_object(request))
        except InvalidInputError as exc:
            return _invalid(exc)
        return await self._run_once(
            key=key,
            fingerprint=body_fingerprint(request.path, body),
            work=lambda ledger: record(ledger, body),
        )

    def _charge(self, ledger: Ledger, charge: ChargeIn) -> Answer:
        declined = charge.customer.startswith(DECLINE_PREFIX) or self._roll(
            self.config.decline_rate
        )
        return ledger.charge(charge, declined=declined)

    # /v1/ handlers

    async def charge_create(self, request: web.Request) -> web.Response:
        """``POST /v1/charges``."""
        return await self._write(request, parse_charge, self._charge)

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
        return await self._write(request, parse_refund, Ledger.refund)

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
