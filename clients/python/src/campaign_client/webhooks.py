"""Verifying the service's callbacks (the integrator's guide, "Callbacks").

Each callback is POSTed with

    X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">

keyed with the client's webhook secret. While the operators rotate that secret the header
carries one `v1` per valid secret, the old one first (`t=...,v1=<old>,v1=<new>`): a POST is
genuine when any entry matches a secret the receiver holds. A timestamp further than the
tolerance (five minutes) from the receiver's clock is refused, so that a captured callback
cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from campaign_client.errors import WebhookVerificationError
from campaign_client.models import Order, _time

SIGNATURE_HEADER = "X-Signature"
DEFAULT_TOLERANCE = 300


@dataclass(frozen=True)
class WebhookEvent:
    """A verified callback: the order as it is now, and what names this POST.

    Deduplicate on `event_id` (one per status change; every redelivery repeats it) and
    ignore an event whose `order.updated_at` is older than the state you already hold.
    `delivery_id` is new on every attempt; `event_time` is when the status changed."""

    order: Order
    event_id: str | None
    delivery_id: str | None
    event_time: datetime | None
    request_id: str | None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name in any case: a plain dict from a framework may keep the sender's."""
    getter = getattr(headers, "get", None)
    if getter is not None and (value := getter(name)) is not None:
        return str(value)
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return str(value)
    return None


def _mac(secret: str, stamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_matches(
    body: bytes,
    header: str,
    secrets: str | Iterable[str],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """True when `header` (X-Signature's value) signs `body` under one of `secrets` with a
    timestamp within `tolerance` seconds of `now`. Never raises on a malformed header."""
    keys = [secrets] if isinstance(secrets, str) else [s for s in secrets if s]
    if not keys:
        raise ValueError("no webhook secret given")
    # As the service's own check reads it: entries `name=value` split on commas, exactly
    # one `t`, at least one `v1`; anything else (a part without "=") is a bad header.
    parts = [part.partition("=") for part in header.split(",")]
    if not all(sep for _, sep, _ in parts):
        return False
    stamps = [value for name, _, value in parts if name == "t"]
    given = [value for name, _, value in parts if name == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not given:
        return False
    stamp = int(stamps[0])
    if abs((time.time() if now is None else now) - stamp) > tolerance:
        return False
    expected = [_mac(key, stamp, body) for key in keys]
    # Every pair compared in constant time, none skipped after a match: the time taken
    # tells nothing about which entry or secret matched.
    matches = [hmac.compare_digest(v.encode(), e.encode()) for v in given for e in expected]
    return any(matches)


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secrets: str | Iterable[str],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> WebhookEvent:
    """Verify a callback and read it. `body` is the raw request body, exactly as received
    (parse it only after this); `headers` the request's headers, in any case; `secrets` your
    webhook secret, or several while you roll a new one out. Raises
    WebhookVerificationError when the signature is missing, wrong or outside `tolerance`."""
    header = _header(headers, SIGNATURE_HEADER)
    if not header:
        raise WebhookVerificationError(f"no {SIGNATURE_HEADER} header")
    if not signature_matches(body, header, secrets, tolerance=tolerance, now=now):
        raise WebhookVerificationError("the signature does not match, or is too old")
    try:
        order = Order.from_json(json.loads(body))
    except (ValueError, KeyError, TypeError) as exc:
        raise WebhookVerificationError("the signed body is not an order") from exc
    return WebhookEvent(
        order=order,
        event_id=_header(headers, "X-Event-Id"),
        delivery_id=_header(headers, "X-Delivery-Id"),
        event_time=_time(_header(headers, "X-Event-Time")),
        request_id=_header(headers, "X-Request-ID"),
    )
