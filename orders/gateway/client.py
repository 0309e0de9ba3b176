"""Client for the payment gateway of docs/gateway-protocol.md, as the settlement worker uses it.

Every call returns an outcome and never raises for a network or protocol problem,
because the caller must record *something* for each attempt. The outcome kinds say
what the caller may conclude:

- ``succeeded`` / ``declined`` (charges), ``succeeded`` / ``failed`` (refunds): the
  gateway answered and the answer is final.
- ``retry``: the gateway refused before doing anything (429 over quota, or 409 because
  the same idempotency key is still in flight): nothing moved; try again later with
  the same key.
- ``unknown``: the money may or may not have moved (5xx, time-out, dropped connection,
  unreadable answer), or the request was wrong (400/401/422). The caller settles it
  with ``charges_for`` or by retrying with the same idempotency key, never by guessing.
  A look-up that fails answers with the outcome to record instead: ``retry`` or ``unknown``.

One client serves a whole thread pool: infra.keepalive's pool (http.client) is thread-safe
and keeps up to ``pool_size`` keep-alive connections; a request costs less than half of
urllib3's client CPU (docs/performance.md), which counts at hundreds of charges a second.
It never retries on its own: a retry is the settlement's decision, with the same
idempotency key. Settings come in as arguments; this module imports nothing from Django.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Final, Literal, Self
from urllib.parse import urlencode, urlsplit

from infra.keepalive import TRANSPORT_ERRORS, KeepAlivePool

if TYPE_CHECKING:
    from types import TracebackType

logger = logging.getLogger("orders.gateway.client")

ChargeKind = Literal["succeeded", "declined", "unknown", "retry"]
RefundKind = Literal["succeeded", "failed", "unknown", "retry"]

MAX_ERROR_LENGTH: Final = 300
# A charge or refund answer is a few hundred bytes; one longer than this is no usable answer.
MAX_ANSWER_BYTES: Final = 1 << 20
# Refusals of a refund that are final: nothing was refunded, and repeating won't help.
FINAL_REFUND_REFUSALS: Final = frozenset({"charge_not_found", "refund_exceeds_charge"})


class AnswerTooLarge(http.client.HTTPException):
    """The gateway's answer was longer than MAX_ANSWER_BYTES: treated as no answer (one of
    TRANSPORT_ERRORS), so the outcome is unknown and settled by lookup."""


@dataclass(frozen=True)
class ChargeOutcome:
    """What a charge attempt established; see the module docstring for each kind."""

    kind: ChargeKind
    charge_id: str | None = None
    retry_after: float | None = None  # seconds, from Retry-After on 429
    error: str | None = None  # short text for the record on unknown/retry


@dataclass(frozen=True)
class RefundOutcome:
    """What a refund attempt established; see the module docstring for each kind."""

    kind: RefundKind
    refund_id: str | None = None
    retry_after: float | None = None  # seconds, from Retry-After on 429
    error: str | None = None  # short text for the record on failed/unknown/retry


@dataclass(frozen=True)
class _Refusal:
    """A non-201 answer classified: ``retry`` when nothing was done, else ``unknown``."""

    kind: Literal["retry", "unknown"]
    code: str | None
    error: str
    retry_after: float | None = None


@dataclass(frozen=True)
class _Answer:
    """What the gateway answered: status, headers (case-insensitive) and the body's bytes."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> object:
        return json.loads(self.content)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


def _json_object(response: _Answer) -> dict[str, object] | None:
    """The body as a JSON object, or None if it is anything else."""
    try:
        data = response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return None
    return data if isinstance(data, dict) else None


def _retry_after(response: _Answer, body: dict[str, object] | None) -> float | None:
    """Seconds to wait, from the Retry-After header or the body's ``retry_after``."""
    candidates: list[object] = [response.headers.get("Retry-After")]
    if body is not None:
        candidates.append(body.get("retry_after"))
    for candidate in candidates:
        if isinstance(candidate, bool) or not isinstance(candidate, str | int | float):
            continue
        try:
            seconds = float(candidate)
        except ValueError:  # an HTTP-date; the contract promises seconds, so fall through
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def _classify_refusal(response: _Answer) -> _Refusal:
    """Classify an answer other than 201."""
    body = _json_object(response)
    code = body.get("error") if body is not None else None
    detail = body.get("detail") if body is not None else None
    error = _clip(
        f"HTTP {response.status_code}"
        + (f" {code}" if isinstance(code, str) else "")
        + (f": {detail}" if isinstance(detail, str) else "")
    )
    code = code if isinstance(code, str) else None
    if response.status_code == HTTPStatus.TOO_MANY_REQUESTS:
        return _Refusal("retry", code, error, _retry_after(response, body))
    if response.status_code == HTTPStatus.CONFLICT:  # the same key is still in flight
        return _Refusal("retry", code, error)
    # 5xx: the gateway may have acted. 400/401/422 and anything unexpected: our bug or
    # misconfiguration. Either way only a look at the gateway's records can tell.
    return _Refusal("unknown", code, error)


def _lookup_failed(
    reference: str, kind: Literal["retry", "unknown"], error: str, retry_after: float | None = None
) -> ChargeOutcome:
    logger.warning("gateway charges_for %s: %s", reference, error)
    return ChargeOutcome(
        kind, retry_after=retry_after, error=_clip(f"could not look up earlier charges: {error}")
    )


def _transport_error(exc: Exception) -> str:
    # A dropped connection, a time-out and a refused connection all land here.
    return _clip(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


class GatewayClient:
    """Talks to the payment gateway at ``base_url`` with ``api_key``.

    Safe to share between threads. ``timeout`` (seconds) bounds the connect and each wait
    for the answer's bytes. Call ``close`` when done,
    or use the client as a context manager.
    """

    def __init__(
        self, *, base_url: str, api_key: str, timeout: float = 5.0, pool_size: int = 64
    ) -> None:
        url = urlsplit(base_url)
        https = url.scheme == "https"
        self._http = KeepAlivePool(
            url.hostname or "",
            url.port or (443 if https else 80),
            timeout=timeout,
            maxsize=pool_size,
            https=https,
            max_body=MAX_ANSWER_BYTES,
        )
        self._base_path = url.path.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> _Answer:
        """One request, its whole answer read; raises one of TRANSPORT_ERRORS when none came
        (refused, dropped, timed out, not HTTP). `fields` go in the query string."""
        target = self._base_path + path + (f"?{urlencode(fields)}" if fields else "")
        answer = self._http.request(
            method, target, body=body, headers={**self._headers, **(headers or {})}
        )
        if not answer.whole:
            raise AnswerTooLarge(f"answer body over {MAX_ANSWER_BYTES} bytes")
        return _Answer(answer.status, answer.headers, answer.body)

    def _post(self, path: str, *, idempotency_key: str, body: dict[str, object]) -> _Answer | str:
        """POST ``body``; the response, or a short error text when none came."""
        headers = {"Idempotency-Key": idempotency_key, "Content-Type": "application/json"}
        try:
            return self._request("POST", path, body=json.dumps(body).encode(), headers=headers)
        except TRANSPORT_ERRORS as exc:
            error = _transport_error(exc)
            logger.warning("gateway POST %s key=%s: no answer: %s", path, idempotency_key, error)
            return error

    def charge(
        self, *, idempotency_key: str, amount: int, currency: str, reference: str, customer: str
    ) -> ChargeOutcome:
        """Charge ``amount`` minor units to ``customer`` for ``reference``.

        Repeating a call with the same ``idempotency_key`` never charges twice: the
        gateway replays its first answer. Never raises for network or gateway faults.
        """
        body: dict[str, object] = {
            "amount": amount,
            "currency": currency,
            "reference": reference,
            "customer": customer,
        }
        response = self._post("/v1/charges", idempotency_key=idempotency_key, body=body)
        if isinstance(response, str):
            return ChargeOutcome("unknown", error=response)
        if response.status_code == HTTPStatus.CREATED:
            return _charge_outcome(response, sent=body)
        refusal = _classify_refusal(response)
        if refusal.kind == "unknown":
            logger.warning("gateway charge key=%s: %s", idempotency_key, refusal.error)
        return ChargeOutcome(refusal.kind, retry_after=refusal.retry_after, error=refusal.error)

    def charges_for(self, *, reference: str) -> list[dict[str, object]] | ChargeOutcome:
        """Every charge the gateway holds for ``reference``, oldest first.

        When the gateway could not be asked or gave no usable answer, the outcome to record
        instead: ``retry`` when it refused the look-up (429: nothing to count against the
        payment), ``unknown`` otherwise (5xx, time-out, connection error, malformed body).
        """
        try:
            response = self._request("GET", "/v1/charges", fields={"reference": reference})
        except TRANSPORT_ERRORS as exc:
            return _lookup_failed(reference, "unknown", _transport_error(exc))
        if response.status_code != HTTPStatus.OK:
            refusal = _classify_refusal(response)
            return _lookup_failed(reference, refusal.kind, refusal.error, refusal.retry_after)
        body = _json_object(response)
        charges = body.get("data") if body is not None else None
        if not isinstance(charges, list) or not all(isinstance(c, dict) for c in charges):
            return _lookup_failed(reference, "unknown", "malformed answer")
        # A reference filter the gateway ignored must not make another order look paid.
        return [c for c in charges if c.get("reference") == reference]

    def refund(self, *, idempotency_key: str, charge_id: str, amount: int) -> RefundOutcome:
        """Refund ``amount`` minor units of charge ``charge_id``.

        ``failed`` means the gateway refused for good (no such charge, or more than is
        left to refund); nothing was refunded. Never raises for network or gateway faults.
        """
        body: dict[str, object] = {"charge": charge_id, "amount": amount}
        response = self._post("/v1/refunds", idempotency_key=idempotency_key, body=body)
        if isinstance(response, str):
            return RefundOutcome("unknown", error=response)
        if response.status_code == HTTPStatus.CREATED:
            return _refund_outcome(response, sent=body)
        refusal = _classify_refusal(response)
        if refusal.code in FINAL_REFUND_REFUSALS:
            return RefundOutcome("failed", error=refusal.error)
        if refusal.kind == "unknown":
            logger.warning("gateway refund key=%s: %s", idempotency_key, refusal.error)
        return RefundOutcome(refusal.kind, retry_after=refusal.retry_after, error=refusal.error)


def _mismatch(answer: dict[str, object], sent: dict[str, object], fields: tuple[str, ...]) -> str:
    """Names of ``fields`` where the answer disagrees with what was sent, or ''."""
    return ", ".join(name for name in fields if answer.get(name) != sent[name])


def _charge_outcome(response: _Answer, *, sent: dict[str, object]) -> ChargeOutcome:
    """Read a 201 charge answer. Anything odd in it makes the outcome unknown."""
    answer = _json_object(response)
    if answer is None:
        return ChargeOutcome("unknown", error="HTTP 201 with an unreadable body")
    charge_id, status = answer.get("id"), answer.get("status")
    if not (isinstance(charge_id, str) and charge_id) or status not in {"succeeded", "declined"}:
        return ChargeOutcome("unknown", error=_clip(f"HTTP 201 without id/status: {answer}"))
    if mismatched := _mismatch(answer, sent, ("amount", "currency", "reference")):
        error = f"HTTP 201 for another charge ({mismatched} differ)"
        return ChargeOutcome("unknown", charge_id=charge_id, error=error)
    kind: ChargeKind = "succeeded" if status == "succeeded" else "declined"
    return ChargeOutcome(kind, charge_id=charge_id)


def _refund_outcome(response: _Answer, *, sent: dict[str, object]) -> RefundOutcome:
    """Read a 201 refund answer. Anything odd in it makes the outcome unknown."""
    answer = _json_object(response)
    if answer is None:
        return RefundOutcome("unknown", error="HTTP 201 with an unreadable body")
    refund_id, status = answer.get("id"), answer.get("status")
    if not (isinstance(refund_id, str) and refund_id) or status not in {"succeeded", "failed"}:
        return RefundOutcome("unknown", error=_clip(f"HTTP 201 without id/status: {answer}"))
    if mismatched := _mismatch(answer, sent, ("charge", "amount")):
        error = f"HTTP 201 for another refund ({mismatched} differ)"
        return RefundOutcome("unknown", refund_id=refund_id, error=error)
    if status == "failed":
        return RefundOutcome("failed", refund_id=refund_id, error="refund failed at the gateway")
    return RefundOutcome("succeeded", refund_id=refund_id)
