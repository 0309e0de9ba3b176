"""Per-process copies of the few facts the request path reads on every request and may see a
moment late (products' prices, campaigns' terms, API keys), and the one version in Redis that
tells every process when staff changed any of them.

Every service that changes such a fact asks for `copies_changed` after its commit: a new
random version in Redis. Each process reads that version at most every
CACHE_VERSION_CHECK_SECONDS (one GET, whatever the number of requests), and trusts a copy only
while the version is the one it read before loading the copy; so a change reaches every
process within that interval, whatever the copy's time to live. The time to live still bounds
what moves without a new version: the stock and budget counters every hold moves, which the
workers check again under locks, so a copy a second old costs at most a wasted queue slot.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

import redis
from django.conf import settings

from infra import fast

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

COPIES_VERSION = "cop:copies:version"  # a random token, new after each change staff make
# The key the previous release's processes read for revoked API keys: written too, so that a
# key revoked during a rolling restart stops in them as well. Goes in the release after.
PREVIOUS_KEYS_VERSION = "cop:apikeys:version"


class CopiesVersion:
    """The version of every per-process copy, as this process knows it: a token that changes
    when Redis's version changes, and also whenever this process cannot be sure it saw every
    change (see `copies_changed` for why that is enough). None while Redis cannot be read:
    then nothing cached is trusted, and nothing is kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._read_at = -math.inf  # when the last read began, answered or not
        self._answered_at = -math.inf  # the last read Redis answered
        self._epoch = 0  # moved on whenever a change may have been missed

    def current(self) -> str | None:
        """The token, read again from Redis when the last read is CACHE_VERSION_CHECK_SECONDS
        old."""
        now = time.monotonic()
        with self._lock:
            if now - self._read_at < settings.CACHE_VERSION_CHECK_SECONDS:
                return self._token
            self._read_at = now  # one read at a time: other threads keep the token meanwhile
        try:
            value: str | None = fast.client().get(COPIES_VERSION) or ""
        except redis.RedisError:
            value = None
        with self._lock:
            if value is None or now - self._answered_at > settings.CACHE_VERSION_PUBLISH_SECONDS:
                # Unreadable now, or unread for longer than a change keeps trying to publish
                # its version: a change may have gone by unseen, so nothing loaded before is
                # trusted again.
                self._epoch += 1
            if value is not None:
                self._answered_at = max(self._answered_at, now)
            self._token = None if value is None else f"{value}/{self._epoch}"
            return self._token

    def forget(self) -> None:
        """Drop this process's copies now (it made a change, or a test starts afresh)."""
        with self._lock:
            self._epoch += 1
            self._read_at = -math.inf


copies_version = CopiesVersion()


def copies_changed() -> None:
    """Make every process drop its copies: a new version in Redis. Call once the change is
    committed (`transaction.on_commit(copies_changed)`), so that no process loads the old
    rows again under the new version. This process drops its own at once.

    A refused write is tried again, with backoff, until CACHE_VERSION_PUBLISH_SECONDS after
    the first try. Why a version that never lands cannot leave a stale copy trusted for long:
    if every try failed because Redis was down all that time, then every process that read the
    version meanwhile failed to read it too and moved its epoch (a copy loaded before is never
    trusted again), and a process that did not read it at all has gone longer than
    CACHE_VERSION_PUBLISH_SECONDS between two answered reads, which moves its epoch just the
    same (`CopiesVersion.current`). What is left is a Redis that answers other processes'
    reads while refusing this one's writes for all that time (a failover's read-only replica,
    a Redis flapping between the tries): the copies then live out their time to live
    (INTAKE_CACHE_SECONDS, API_KEY_CACHE_SECONDS), and the failure is logged as an error for
    the operator.
    """
    copies_version.forget()
    deadline = time.monotonic() + settings.CACHE_VERSION_PUBLISH_SECONDS
    delay = 0.05
    while True:
        try:
            token = secrets.token_hex(8)
            fast.client().mset({COPIES_VERSION: token, PREVIOUS_KEYS_VERSION: token})
        except redis.RedisError:
            left = deadline - time.monotonic()
            if left <= 0:
                log.error(
                    "could not publish the copies' new version for %ss: other processes may "
                    "serve what they hold for its time to live",
                    settings.CACHE_VERSION_PUBLISH_SECONDS,
                    exc_info=True,
                )
                return
            log.warning("could not publish the copies' new version; trying again", exc_info=True)
            time.sleep(min(delay, left))
            delay *= 2
        else:
            return


class TtlCache(Generic[K, V]):
    """Thread-safe; `ttl()` is read at each put, so a setting changed by a test applies at
    once; holds at most `max_entries` (then starts again empty: a flood cannot grow it).
    Each entry carries the version read before its value was loaded, so a load that raced a
    change is never trusted once the change is seen."""

    def __init__(self, ttl: Callable[[], float], *, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: dict[K, tuple[float, str, V]] = {}
        self._seen: str | None = None

    @staticmethod
    def version() -> str | None:
        """The version to give `put_many` for values loaded after this call."""
        return copies_version.current()

    def get_many(self, keys: Iterable[K]) -> dict[K, V]:
        version = self.version()
        now = time.monotonic()
        with self._lock:
            if version != self._seen:
                self._entries.clear()  # none can be trusted again: free the memory
                self._seen = version
            if version is None:
                return {}
            hits = [(k, self._entries.get(k)) for k in keys]
        return {k: hit[2] for k, hit in hits if hit and hit[0] > now and hit[1] == version}

    def put_many(self, items: Mapping[K, V], *, version: str | None) -> None:
        ttl = self._ttl()
        if ttl <= 0 or not items or version is None:
            return
        until = time.monotonic() + ttl
        with self._lock:
            if len(self._entries) + len(items) > self._max:
                self._entries.clear()
            for key, value in items.items():
                self._entries[key] = (until, version, value)

    def lookup(self, keys: Iterable[K], load: Callable[[list[K]], Mapping[K, V]]) -> dict[K, V]:
        """The values of `keys`: those held and trusted, and the rest from `load` (given the
        keys missing, only when some are; what it finds is kept)."""
        wanted = list(keys)
        version = self.version()
        found = self.get_many(wanted)
        missing = [k for k in wanted if k not in found]
        if missing:
            fresh = load(missing)
            self.put_many(fresh, version=version)
            found.update(fresh)
        return found

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
