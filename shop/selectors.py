"""Reads of the catalogue and of API clients."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Q, QuerySet

from config.memo import TtlCache
from config.ratelimit import Limit
from shop.models import ApiClient, ApiKey, AuditEntry, Product, RateLimit, RateLimitChange


def product_list(*, search: str = "", store: str = "") -> QuerySet[Product]:
    qs = Product.objects.select_related("store").order_by("sku")
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
            "id", "sku", "price", "currency", "stock"
        )
    }


product_cache: TtlCache[str, Product] = TtlCache(lambda: settings.INTAKE_CACHE_SECONDS)


def products_by_sku_cached(skus: Iterable[str]) -> dict[str, Product]:
    """products_by_sku for the intake path: known SKUs from a per-process copy at most
    INTAKE_CACHE_SECONDS old (price, id, stock; the reservation worker checks stock again
    under locks), the rest from the database, so a new product is found at once."""
    wanted = list(skus)
    found = product_cache.get_many(wanted)
    missing = [s for s in wanted if s not in found]
    if missing:
        fresh = products_by_sku(missing)
        product_cache.put_many(fresh)
        found.update(fresh)
    return found


def products_for_update(product_ids: Iterable[int]) -> dict[int, Product]:
    """Lock products in pk order (lock order: ... → coupon → product). Inside an atomic block."""
    rows = (
        Product.objects.select_for_update(no_key=True)
        .filter(pk__in=list(product_ids))
        .order_by("pk")
    )
    return {p.pk: p for p in rows.only("id", "sku", "stock")}


def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


MAX_CACHED_KEYS = 10_000  # bounds memory against floods of made-up keys


class _KeyCache:
    """Per-process cache of key hash → client id, so the intake path costs no query for auth.

    A revoked key stops working within API_KEY_CACHE_SECONDS (documented in README).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, ApiClient | None]] = {}

    def get(self, key_hash: str) -> tuple[bool, ApiClient | None]:
        with self._lock:
            hit = self._entries.get(key_hash)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key_hash: str, client: ApiClient | None) -> None:
        ttl = settings.API_KEY_CACHE_SECONDS
        if ttl <= 0:
            return
        with self._lock:
            if len(self._entries) > MAX_CACHED_KEYS:
                self._entries.clear()
            self._entries[key_hash] = (time.monotonic() + ttl, client)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


key_cache = _KeyCache()


def api_client_for_key(raw_key: str) -> ApiClient | None:
    """The active client owning this unrevoked key, or None. Lookup is by hash (indexed), so
    no comparison of secrets happens in Python at all."""
    key_hash = api_key_hash(raw_key)
    found, client = key_cache.get(key_hash)
    if found:
        return client
    key = (
        ApiKey.objects.select_related("client")
        .filter(key_hash=key_hash, revoked_at__isnull=True, client__is_active=True)
        .first()
    )
    client = key.client if key else None
    key_cache.put(key_hash, client)
    return client


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
