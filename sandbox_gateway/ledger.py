"""What the sandbox knows and how it is told: its settable behaviour, the validated bodies of
charges and refunds, and the ledger that records them. No HTTP here (handlers.py)."""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Final, TypeGuard

CURRENCY: Final = "CNY"
MAX_LATENCY_MS: Final = 600_000
MAX_REFERENCE_LENGTH: Final = 255
CUSTOMER_RE: Final = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")

JsonObject = dict[str, object]


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxConfig:
    """The settable behaviour of the sandbox; the package docstring describes each field."""

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
    """True for a finite JSON number; booleans are not numbers here (as in
    docs/integrator-guide.md, Conventions)."""
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


# --- request bodies ----------------------------------------------------------------------


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


def body_fingerprint(path: str, body: ChargeIn | RefundIn) -> str:
    # Canonical JSON of the validated body, so key order and spacing don't count as a change.
    return json.dumps([path, asdict(body)], sort_keys=True)


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
    # reference -> its charges' ids, oldest first: the look-up after an unknown outcome. A scan
    # of every charge made each one cost the whole ledger, on the one event loop, and the
    # gateway slowed for everyone as a campaign went on (a 20-minute soak: 10 % to 45 % of a
    # core, and the paid rate halved).
    by_reference: dict[str, list[str]] = field(default_factory=dict)
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
        return [self.charge_view(self.charges[i]) for i in self.by_reference.get(reference, [])]

    def charge(self, charge: ChargeIn, *, declined: bool) -> Answer:
        """Record ``charge`` as declined or succeeded; the 201 answer."""
        record = Charge(
            id=f"ch_{secrets.token_hex(12)}",
            status="declined" if declined else "succeeded",
            amount=charge.amount,
            currency=charge.currency,
            reference=charge.reference,
            customer=charge.customer,
            created_at=_now_iso(),
        )
        self.charges[record.id] = record
        self.by_reference.setdefault(record.reference, []).append(record.id)
        if declined:
            self.stats.charges_declined += 1
        else:
            self.stats.charges_succeeded += 1
        return Answer(HTTPStatus.CREATED, asdict(record))

    def refund(self, refund: RefundIn) -> Answer:
        """Record ``refund``: 201, or 404 for an unknown charge, or 422 when it asks for more
        than the charge has left. Only a 201 records anything."""
        charge = self.charges.get(refund.charge)
        if charge is None:
            body: JsonObject = {"error": "charge_not_found", "detail": "No such charge."}
            return Answer(HTTPStatus.NOT_FOUND, body)
        available = self.refundable(charge)
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
        self.refunded[charge.id] = self.refunded.get(charge.id, 0) + refund.amount
        self.refunds.append(record)
        self.stats.refunds += 1
        return Answer(HTTPStatus.CREATED, asdict(record))

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


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()
