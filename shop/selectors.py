"""Reads of the catalogue and of API clients."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import redis
from django.conf import settings
from django.db.models import Q, QuerySet

from infra import fast
from infra.contract import key_livemode
from infra.memo import TtlCache
from infra.ratelimit import Limit
from infra.sql import prepared_objects
from shop import sql
from shop.models import ApiClient, ApiKey, AuditEntry, Product, RateLimit, RateLimitChange, Store


def product_list(*, search: str = "", store: str = "", livemode: bool = True) -> QuerySet[Product]:
    """The products a key of this mode may order: live products for live keys, test products
    for test keys (docs/integrator-guide.md, Test mode)."""
    qs = Product.objects.select_related("store").filter(livemode=livemode).order_by("sku")
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(sku__icontains=search))
    if store:
        qs = qs.filter(store__slug=store)
    return qs


def products_by_sku(skus: Iterable[str]) -> dict[str, Product]:
    """Price and id for each known SKU (unknown ones are simply absent)."""
    return {
        p.sku: p
        for p in Product.objects.filter(sku__in=list(skus)).only(
            "id", "sku", "price", "currency", "stock", "livemode"
        )
    }


product_cache: TtlCache[str, Product] = TtlCache(lambda: settings.INTAKE_CACHE_SECONDS)


def products_by_sku_cached(skus: Iterable[str]) -> dict[str, Product]:
    """products_by_sku for the intake path: known SKUs from a per-process copy (infra/memo.py:
    a change through shop.services reaches it within CACHE_VERSION_CHECK_SECONDS; stock, which
    every hold moves, may be INTAKE_CACHE_SECONDS old, and the reservation worker checks it
    again under locks), the rest from the database, so a new product is found at once."""
    return product_cache.lookup(skus, products_by_sku)


def products_for_update(product_ids: Iterable[int]) -> dict[int, Product]:
    """Lock products in pk order (lock order: ... → coupon → product). Inside an atomic block."""
    rows = prepared_objects(Product, sql.PRODUCTS_FOR_UPDATE, [list(product_ids)])
    return {p.pk: p for p in rows}


def products_read(product_ids: Iterable[int]) -> dict[int, Product]:
    """Products' stock as committed now, unlocked: for a batch that takes its units with a
    conditional UPDATE (`services.stock_take`), which checks them again."""
    rows = prepared_objects(Product, sql.PRODUCTS_READ, [list(product_ids)])
    return {p.pk: p for p in rows}


def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


MAX_CACHED_KEYS = 10_000  # bounds memory against floods of made-up keys

# Key hash → client, so the intake path costs no query for auth: good keys for
# API_KEY_CACHE_SECONDS, failed ones apart for AUTH_NEGATIVE_CACHE_SECONDS (a repeated bad key
# costs no database lookup), each bounded on its own, so a flood of made-up keys never evicts
# the good ones. A revoked key, or a client switched off, stops working in every process
# within CACHE_VERSION_CHECK_SECONDS: the change drops every process's copies (infra/memo.py),
# and while Redis cannot be read nothing cached is trusted (the database answers instead).
key_cache: TtlCache[str, ApiClient] = TtlCache(
    lambda: settings.API_KEY_CACHE_SECONDS, max_entries=MAX_CACHED_KEYS
)
bad_key_cache: TtlCache[str, bool] = TtlCache(
    lambda: settings.AUTH_NEGATIVE_CACHE_SECONDS, max_entries=MAX_CACHED_KEYS
)


def api_client_known(raw_key: str) -> ApiClient | None:
    """The client of a key this process found good lately, without any lookup; else None."""
    key_hash = api_key_hash(raw_key)
    return key_cache.get_many([key_hash]).get(key_hash)


def api_client_for_key(raw_key: str) -> ApiClient | None:
    """The active client owning this unrevoked key, or None. Lookup is by hash (indexed), so
    no comparison of secrets happens in Python at all."""
    key_hash = api_key_hash(raw_key)
    version = key_cache.version()
    known = key_cache.get_many([key_hash])
    if known:
        return known[key_hash]
    if bad_key_cache.get_many([key_hash]):
        return None
    key = (
        ApiKey.objects.select_related("client")
        .filter(
            key_hash=key_hash,
            revoked_at__isnull=True,
            client__is_active=True,
            livemode=key_livemode(raw_key),  # the prefix tells the mode: both must agree
        )
        .first()
    )
    if key is None:
        bad_key_cache.put_many({key_hash: True}, version=version)
        return None
    key_cache.put_many({key_hash: key.client}, version=version)
    return key.client


def auth_blocked_seconds(address: str) -> float:
    """How long `address` must still wait after too many failed authentications (0: not
    blocked). Read on every lookup the key cache cannot answer, so that a spray of new
    made-up keys from a blocked address costs one Redis GET and no database query."""
    try:
        left_ms = fast.client().pttl(f"{AUTH_BLOCK_PREFIX}{address}")
    except redis.RedisError:
        return 0.0  # fail open, like every limiter: the database still says no to bad keys
    return max(0.0, left_ms / 1000) if left_ms and left_ms > 0 else 0.0


AUTH_BLOCK_PREFIX = "cop:authblock:"


_limits: dict[str, tuple[float, Limit]] = {}
_limits_lock = threading.Lock()


def rate_limit(scope: str) -> Limit:
    """The limit in force for `scope`: its RateLimit row, else RATE_LIMIT_DEFAULTS. Cached per
    process for RATE_LIMIT_CACHE_SECONDS, so a change reaches every worker without restart."""
    now = time.monotonic()
    with _limits_lock:
        hit = _limits.get(scope)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = RateLimit.objects.filter(scope=scope).first()
    if row is not None:
        limit = Limit(per_second=row.per_second, burst=row.burst)
    else:
        per_second, burst = settings.RATE_LIMIT_DEFAULTS.get(scope, (None, 1))
        limit = Limit(per_second=per_second, burst=burst)
    with _limits_lock:
        _limits[scope] = (now + settings.RATE_LIMIT_CACHE_SECONDS, limit)
    return limit


def rate_limits_forget() -> None:
    """Drop this process's cached limits (tests, and the process that changed one)."""
    with _limits_lock:
        _limits.clear()


# --- For the staff admin ----------------------------------------------------------------------


@dataclass(frozen=True)
class LimitInForce:
    scope: str
    label: str
    per_second: float | None  # None: unlimited; 0: stopped
    burst: int
    source: str  # "admin" (a RateLimit row) or "default" (settings)
    changed_by: str
    changed_at: datetime | None


def rate_limits_in_force() -> list[LimitInForce]:
    """Every scope's limit as the processes enforce it (within RATE_LIMIT_CACHE_SECONDS),
    where it comes from, and its last change. Reads the rows, not this process's cache."""
    rows = {r.scope: r for r in RateLimit.objects.all()}
    last: dict[str, RateLimitChange] = {}
    for change in RateLimitChange.objects.order_by("scope", "-id").distinct("scope"):
        last[change.scope] = change
    found = []
    for scope, label in RateLimit.Scope.choices:
        row = rows.get(scope)
        if row is not None:
            per_second, burst, source = row.per_second, row.burst, "admin"
        else:
            per_second, burst = settings.RATE_LIMIT_DEFAULTS.get(scope, (None, 1))
            source = "default"
        change = last.get(scope)
        found.append(
            LimitInForce(
                scope=scope,
                label=str(label),
                per_second=per_second,
                burst=burst,
                source=source,
                changed_by=change.actor if change else "",
                changed_at=change.created_at if change else None,
            )
        )
    return found


def audit_list_for_campaign(*, campaign_id: int) -> QuerySet[AuditEntry]:
    """What a campaign's page lists: the controls used on it, and the rate-limit changes,
    which apply to every campaign; newest first."""
    return AuditEntry.objects.filter(
        Q(target_type="campaign", target_id=str(campaign_id)) | Q(target_type="rate_limit")
    ).order_by("-id")


def store_id_for_slug(slug: str) -> int | None:
    return Store.objects.filter(slug=slug).values_list("id", flat=True).first()
