"""A per-process cache with a time to live, for the few facts the intake path reads on every
request and may see a moment late (products' prices, campaigns' terms): the workers check
everything again under locks, so a second-old copy costs at most a wasted queue slot."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Thread-safe; `ttl()` is read at each put, so a setting changed by a test applies at
    once; holds at most `max_entries` (then starts again empty: a flood cannot grow it)."""

    def __init__(self, ttl: Callable[[], float], *, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: dict[K, tuple[float, V]] = {}

    def get_many(self, keys: Iterable[K]) -> dict[K, V]:
        now = time.monotonic()
        with self._lock:
            hits = [(k, self._entries.get(k)) for k in keys]
        return {k: hit[1] for k, hit in hits if hit is not None and hit[0] > now}

    def put_many(self, items: dict[K, V]) -> None:
        ttl = self._ttl()
        if ttl <= 0 or not items:
            return
        until = time.monotonic() + ttl
        with self._lock:
            if len(self._entries) + len(items) > self._max:
                self._entries.clear()
            for key, value in items.items():
                self._entries[key] = (until, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
