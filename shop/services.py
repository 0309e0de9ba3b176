"""Writes to the catalogue: stock moves, API clients, their keys and webhook secrets.

# lock order: order → campaign → coupon → product. Stock is taken after the caller locked
# the products with `selectors.products_for_update` (pk order), so concurrent batches queue.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from infra import fast, ratelimit
from infra.contract import KEY_PREFIX, TEST_KEY_PREFIX
from infra.errors import InvalidInput
from infra.memo import copies_changed
from infra.ratelimit import Limit
from infra.sql import prepared_count
from shop import sql
from shop.errors import OutOfStock
from shop.models import (
    ApiClient,
    ApiKey,
    AuditEntry,
    Product,
    RateLimit,
    RateLimitChange,
    Store,
)
from shop.selectors import (
    AUTH_BLOCK_PREFIX,
    api_key_hash,
    rate_limit,
    rate_limits_forget,
)

log = logging.getLogger(__name__)


def stock_take(*, quantities: Mapping[int, int]) -> None:
    """Take units of each product (id → units). Raises OutOfStock and takes nothing if any is
    short; the caller's transaction rolls back. `CHECK (stock >= 0)` backs this up."""
    for product_id in sorted(quantities):
        units = quantities[product_id]
        if units <= 0:
            continue
        if prepared_count(sql.STOCK_TAKE, [units, timezone.now(), product_id, units]) == 0:
            raise OutOfStock(f"Product {product_id} has fewer than {units} units left.")


def stock_return(*, quantities: Mapping[int, int]) -> None:
    """Give held units back (a hold released). Exactly-once is the caller's job: it releases
    only while closing the hold's row."""
    for product_id in sorted(quantities):
        units = quantities[product_id]
        if units > 0:
            prepared_count(sql.STOCK_RETURN, [units, timezone.now(), product_id])


def stock_add(*, product_id: int, units: int) -> None:
    """Put more units on sale (staff restock): once committed, intake's copies in every
    process learn it (a product they hold sold out is on sale again)."""
    Product.objects.filter(pk=product_id).update(
        stock=F("stock") + units, stock_total=F("stock_total") + units, updated_at=timezone.now()
    )
    transaction.on_commit(copies_changed)


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    raw: str  # shown once, never stored


def api_client_create(*, name: str) -> ApiClient:
    return ApiClient.objects.create(name=name, webhook_secret=secrets.token_hex(32))


@transaction.atomic
def webhook_secret_rotate(*, client_id: int, overlap: timedelta, actor: str) -> ApiClient:
    """A new webhook secret for the client. The one it replaces keeps signing callbacks
    beside it (two v1 entries in X-Signature, docs/integrator-guide.md, Callbacks) until
    `overlap` has passed, so the chatbot can deploy the new secret without a callback it
    cannot verify; a zero overlap (a leaked secret) ends the old one at once. Rotating again
    within an overlap ends the secret before the current one at once: only two are ever
    valid. Recorded in the audit log (times, never secrets). Every claim of a callback reads
    the secrets afresh."""
    if overlap < timedelta(0):
        raise ValueError("overlap must not be negative")
    client = ApiClient.objects.select_for_update(no_key=True).get(pk=client_id)
    now = timezone.now()
    until = now + overlap if overlap else None
    ApiClient.objects.filter(pk=client_id).update(
        webhook_secret=secrets.token_hex(32),
        webhook_secret_previous=client.webhook_secret if until else "",
        webhook_secret_previous_until=until,
        updated_at=now,
    )
    audit_record(
        actor=actor,
        action="api_client.webhook_secret_rotate",
        target_type="api_client",
        target_id=client.pk,
        target_repr=client.name,
        after={"previous_valid_until": until.isoformat() if until else None},
    )
    client.refresh_from_db()
    return client


@transaction.atomic
def api_key_issue(*, client_id: int, label: str = "", livemode: bool = True) -> IssuedKey:
    """A new key for the client; older keys keep working until revoked (rotation). A test key
    (`livemode=False`) reads `cop_test_...` and reaches only test data
    (docs/integrator-guide.md, Test mode)."""
    raw = f"{TEST_KEY_PREFIX}{secrets.token_urlsafe(32)}"
    while livemode and raw.startswith(TEST_KEY_PREFIX):  # a live key never looks like a test key
        raw = f"{KEY_PREFIX}{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        client_id=client_id,
        prefix=raw[: 12 if livemode else 16],  # a test key's shows a few random characters too
        key_hash=api_key_hash(raw),
        label=label,
        livemode=livemode,
    )
    return IssuedKey(key=key, raw=raw)


def api_key_revoke(*, key_id: int) -> None:
    """Revoke a key. It stops working in every process within CACHE_VERSION_CHECK_SECONDS:
    after the commit, every process's copies are dropped (infra/memo.py)."""
    ApiKey.objects.filter(pk=key_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), updated_at=timezone.now()
    )
    transaction.on_commit(copies_changed)


def auth_failure_record(*, address: str) -> float:
    """Count one failed authentication from `address` in its token bucket (Redis, shared by
    every process): AUTH_FAILURE_BURST at once, then AUTH_FAILURE_RPS a second. Returns 0
    while within the limit, else the seconds the address must wait, and marks it blocked
    for that long (`selectors.auth_blocked_seconds`) so that its next attempts are refused
    before any lookup."""
    limit = Limit(per_second=settings.AUTH_FAILURE_RPS, burst=settings.AUTH_FAILURE_BURST)
    grant = ratelimit.take(f"authfail:{address}", limit)
    if grant.granted:
        return 0.0
    wait = max(grant.retry_after, 0.001)
    try:
        fast.client().set(f"{AUTH_BLOCK_PREFIX}{address}", "1", px=math.ceil(wait * 1000))
    except redis.RedisError:
        log.warning("could not mark %s blocked", address, exc_info=True)
    return wait


@transaction.atomic
def rate_limit_set(*, scope: str, per_second: float | None, burst: int, actor: str) -> RateLimit:
    """Set a limit (None: unlimited, 0: stopped), recorded as a RateLimitChange. In force in
    every process within RATE_LIMIT_CACHE_SECONDS."""
    if scope not in RateLimit.Scope.values:
        raise ValueError(f"unknown rate limit scope {scope!r}")
    if (per_second is not None and per_second < 0) or burst < 1:
        raise ValueError("per_second must be empty or >= 0, and burst >= 1")
    row = RateLimit.objects.select_for_update().filter(scope=scope).first()
    before = {"per_second": row.per_second, "burst": row.burst} if row else {}
    row = row or RateLimit(scope=scope)
    row.per_second, row.burst = per_second, burst
    row.save()
    RateLimitChange.objects.create(
        scope=scope, before=before, after={"per_second": per_second, "burst": burst}, actor=actor
    )
    rate_limits_forget()
    return row


# --- Staff controls and their audit log ------------------------------------------------------


def audit_record(
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: object = "",
    target_repr: str = "",
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the staff audit log. Called by each control's service inside the
    transaction that makes the change, so an entry exists exactly when the change does."""
    return AuditEntry.objects.create(
        actor=actor[:150],
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:64],
        target_repr=target_repr[:200],
        before=dict(before or {}),
        after=dict(after or {}),
    )


@transaction.atomic
def rate_limit_change(*, scope: str, per_second: float | None, burst: int, actor: str) -> RateLimit:
    """`rate_limit_set` as a staff control: the limit in force before (its row, or the
    default) and after go to the audit log too. Raises ValueError like rate_limit_set."""
    rate_limits_forget()  # "before" is what every process enforces now, not a cached copy
    old = rate_limit(scope) if scope in RateLimit.Scope.values else None
    saved = rate_limit_set(scope=scope, per_second=per_second, burst=burst, actor=actor)
    audit_record(
        actor=actor,
        action="rate_limit.change",
        target_type="rate_limit",
        target_id=scope,
        target_repr=scope,
        before={"per_second": old.per_second, "burst": old.burst} if old else {},
        after={"per_second": per_second, "burst": burst},
    )
    return saved


# --- Catalogue written down and loaded (manage.py campaign_load) ------------------------------


@dataclass(frozen=True)
class Put:
    """What a put changed: created, or the fields changed as (before, after)."""

    created: bool
    changes: dict[str, tuple[object, object]]


@transaction.atomic
def store_put(*, slug: str, name: str, actor: str) -> Put:
    """Create the store, or rename it; recorded in the audit log. Loading the same twice
    changes nothing."""
    store = Store.objects.select_for_update(no_key=True).filter(slug=slug).first()
    if store is None:
        store = Store.objects.create(slug=slug, name=name)
        audit_record(
            actor=actor,
            action="store.create",
            target_type="store",
            target_id=store.pk,
            target_repr=slug,
            after={"name": name},
        )
        return Put(created=True, changes={})
    if store.name == name:
        return Put(created=False, changes={})
    Store.objects.filter(pk=store.pk).update(name=name, updated_at=timezone.now())
    audit_record(
        actor=actor,
        action="store.edit",
        target_type="store",
        target_id=store.pk,
        target_repr=slug,
        before={"name": store.name},
        after={"name": name},
    )
    return Put(created=False, changes={"name": (store.name, name)})


@transaction.atomic
def product_put(
    *, sku: str, name: str, store_id: int, price: int, stock_total: int, actor: str
) -> Put:
    """Create the product with `stock_total` units on sale, or bring it to what is given:
    name, store and price change freely (an order is charged the prices its lines were
    placed at: docs/integrator-guide.md); `stock_total` (units ever put on sale) rises by
    putting more units on sale, and falls by taking unsold units off sale, never below what
    orders hold or bought. Raises InvalidInput naming `stock` then. Recorded in the audit log.
    Takes the product's row lock. A change reaches intake in every process within
    CACHE_VERSION_CHECK_SECONDS of the commit (infra/memo.py)."""
    product = Product.objects.select_for_update(no_key=True).filter(sku=sku).first()
    if product is None:
        product = Product.objects.create(
            sku=sku,
            name=name,
            store_id=store_id,
            price=price,
            stock=stock_total,
            stock_total=stock_total,
        )
        audit_record(
            actor=actor,
            action="product.create",
            target_type="product",
            target_id=product.pk,
            target_repr=sku,
            after={"name": name, "store_id": store_id, "price": price, "stock_total": stock_total},
        )
        return Put(created=True, changes={})
    wanted = {"name": name, "store_id": store_id, "price": price, "stock_total": stock_total}
    changes = {k: (getattr(product, k), v) for k, v in wanted.items() if getattr(product, k) != v}
    if not changes:
        return Put(created=False, changes={})
    transaction.on_commit(copies_changed)
    now = timezone.now()
    terms = {k: v for k, (_, v) in changes.items() if k != "stock_total"}
    if terms:
        Product.objects.filter(pk=product.pk).update(**terms, updated_at=now)
    delta = stock_total - product.stock_total
    if delta > 0:
        stock_add(product_id=product.pk, units=delta)
    elif delta < 0:
        # Only units still available can go: one conditional UPDATE (CHECK stock >= 0).
        taken = Product.objects.filter(pk=product.pk, stock__gte=-delta).update(
            stock=F("stock") + delta, stock_total=F("stock_total") + delta, updated_at=now
        )
        if taken == 0:
            committed = product.stock_total - product.stock
            raise InvalidInput(
                f"{sku} cannot have {stock_total} units.",
                fields={
                    "stock": [f"{committed} units are held or sold; it cannot be {stock_total}."]
                },
            )
    audit_record(
        actor=actor,
        action="product.edit",
        target_type="product",
        target_id=product.pk,
        target_repr=sku,
        before={k: b for k, (b, _) in changes.items()},
        after={k: a for k, (_, a) in changes.items()},
    )
    return Put(created=False, changes=changes)
