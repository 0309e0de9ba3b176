"""A global token bucket in Redis, shared by every process on every machine.

One Lua script takes up to `want` tokens atomically and says how long until the next one;
the clock is the Redis server's (TIME), so machines with skewed clocks share one bucket.
Celery's own `rate_limit` is per worker process: not enough for a provider's quota.

If Redis cannot be reached the bucket fails open: the gateway's own 429s are handled as
"retry later", and refusing every order because a cache is down would be worse.

The same call says how many tokens are left, so an API answer can tell the client where it
stands (the IETF `RateLimit-Policy` and `RateLimit` headers, docs/integrator-guide.md, Rate
limits and 429) without another round trip: the API's admission notes each bucket it took
from (`standing_note`) and RateLimitHeadersMiddleware writes them on the answer.
"""

from __future__ import annotations

import contextvars
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING

import redis
from redis.commands.core import Script

from infra import fast

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

log = logging.getLogger(__name__)

UNLIMITED_WAIT = 0.0
STOPPED_WAIT = 5.0  # a rate of 0 stops the work; look again this often

# The bucket itself, as Lua functions that a script puts before its own body: `take` below
# and the intake's admission script (orders.waiting_line, which checks two buckets before it
# takes from either) are both written with them. A bucket is a hash of its tokens and the
# moment they were counted (`ts`, Redis's clock); it refills at `rate` tokens a second up to
# `burst`, and a bucket never seen (or expired, once full again) is full.
BUCKET_LUA = f"""
local BUCKET_STOPPED_WAIT = {STOPPED_WAIT!r}
local function bucket_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function bucket_level(key, rate, burst, now)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil then return burst, now end
  if now > ts then return math.min(burst, tokens + (now - ts) * rate), now end
  return tokens, ts
end
local function bucket_wait(tokens, rate)
  if tokens >= 1 then return 0 end
  return (1 - tokens) / rate
end
local function bucket_store(key, rate, burst, tokens, ts)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(ts))
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
end
"""

# KEYS[1]: the bucket. ARGV: rate (tokens/s, > 0), burst (max tokens), want.
# Returns {granted, seconds until the next token, tokens left}, the last two as strings.
_TAKE_LUA = (
    BUCKET_LUA
    + """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tokens, ts = bucket_level(KEYS[1], rate, burst, bucket_now())
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
bucket_store(KEYS[1], rate, burst, tokens, ts)
local wait = 0
if granted < want then wait = bucket_wait(tokens, rate) end
return {granted, tostring(wait), tostring(tokens)}
"""
)

# KEYS: buckets, in order. ARGV: each one's rate (> 0) and burst, in the same order. Takes one
# token from each in turn and stops at the first that has none, as `take` called for each in
# turn would. Returns {granted, wait, tokens} for each bucket tried, flattened.
_TAKE_EACH_LUA = (
    BUCKET_LUA
    + """
local now = bucket_now()
local out = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tokens, ts = bucket_level(key, rate, burst, now)
  local granted = math.min(1, math.floor(tokens))
  tokens = tokens - granted
  bucket_store(key, rate, burst, tokens, ts)
  local wait = 0
  if granted < 1 then wait = bucket_wait(tokens, rate) end
  out[#out + 1] = granted
  out[#out + 1] = tostring(wait)
  out[#out + 1] = tostring(tokens)
  if granted < 1 then break end
end
return out
"""
)


@dataclass(frozen=True)
class Limit:
    """`per_second` None: unlimited; 0: stopped (nothing granted)."""

    per_second: float | None
    burst: int = 1


@dataclass(frozen=True)
class Grant:
    granted: int
    retry_after: float  # seconds until a token is likely (0 when all were granted)
    tokens: float | None = None  # left in the bucket after this take; None: not counted


def bucket_key(bucket: str) -> str:
    """The Redis key of the bucket named `bucket`."""
    return f"cop:bucket:{bucket}"


@cache
def _script() -> Script:
    return fast.client().register_script(_TAKE_LUA)


def take(bucket: str, limit: Limit, want: int = 1) -> Grant:
    """Take up to `want` tokens from `bucket` under `limit`."""
    if want <= 0 or limit.per_second is None:
        return Grant(granted=want, retry_after=UNLIMITED_WAIT)
    if limit.per_second <= 0:
        return Grant(granted=0, retry_after=STOPPED_WAIT)
    burst = max(1, limit.burst)
    try:
        granted, wait, tokens = _script()(
            keys=[bucket_key(bucket)], args=[limit.per_second, burst, want]
        )
    except redis.RedisError:
        log.warning("rate limiter unavailable for %s; failing open", bucket, exc_info=True)
        return Grant(granted=want, retry_after=UNLIMITED_WAIT)
    return Grant(granted=int(granted), retry_after=float(wait), tokens=float(tokens))


@cache
def _each_script() -> fast.HeldScript:
    return fast.HeldScript(_TAKE_EACH_LUA)


def take_each(takes: Sequence[tuple[str, Limit]]) -> list[Grant]:
    """One token from each bucket in turn, stopping at the first that refuses: what `take`
    called for each in turn answers, with the counted buckets in one Redis round trip (the
    claim POST's client and customer buckets: docs/performance.md, "The web layer on the hot
    endpoints"). One grant for each bucket tried; the last is the refusal, if any."""
    grants: list[Grant | None] = []
    counted: list[int] = []
    for _, limit in takes:
        if limit.per_second is None:
            grants.append(Grant(granted=1, retry_after=UNLIMITED_WAIT))
        elif limit.per_second <= 0:
            grants.append(Grant(granted=0, retry_after=STOPPED_WAIT))
            break
        else:
            counted.append(len(grants))
            grants.append(None)
    if counted:
        _take_counted(takes, counted, grants)
    tried = []
    for grant in grants:
        if grant is None:  # after a counted bucket that refused
            break
        tried.append(grant)
        if grant.granted < 1:
            break
    return tried


def _take_counted(
    takes: Sequence[tuple[str, Limit]], counted: list[int], grants: list[Grant | None]
) -> None:
    """take_each's Redis round trip, for the buckets at `counted`, into `grants`."""
    keys = [bucket_key(takes[i][0]) for i in counted]
    args: list[float] = []
    for i in counted:
        args += [takes[i][1].per_second or 0, max(1, takes[i][1].burst)]
    try:
        found = _each_script()(keys=keys, args=args)
    except redis.RedisError:
        for i in counted:
            log.warning("rate limiter unavailable for %s; failing open", takes[i][0], exc_info=True)
            grants[i] = Grant(granted=1, retry_after=UNLIMITED_WAIT)
        return
    for n, i in enumerate(counted[: len(found) // 3]):
        granted, wait, tokens = found[3 * n : 3 * n + 3]
        grants[i] = Grant(granted=int(granted), retry_after=float(wait), tokens=float(tokens))


# --- Where an API client stands ------------------------------------------------------------
# draft-ietf-httpapi-ratelimit-headers-10 (September 2025; -11 keeps these fields): each
# bucket the request took from is a policy, `"client";q=<burst>;w=<seconds an empty bucket
# takes to fill>` in RateLimit-Policy, and its state now, `"client";r=<whole tokens
# left>;t=<seconds until it is full again>` in RateLimit. Both buckets are reported when the
# request named a shopper; the tighter one is the one with the smaller `r`.


@dataclass(frozen=True)
class Standing:
    policy: str  # "client" or "customer"
    limit: Limit  # a rate > 0
    tokens: float  # left after this request

    def policy_item(self) -> str:
        return _policy_item(self.policy, float(self.limit.per_second or 0), self.limit.burst)

    def item(self) -> str:
        rate, burst = float(self.limit.per_second or 0), max(1, self.limit.burst)
        tokens = min(max(self.tokens, 0.0), burst)
        full = math.ceil((burst - tokens) / rate) if tokens < burst else 0
        return f'"{self.policy}";r={math.floor(tokens)};t={full}'


@lru_cache(maxsize=64)  # a handful of policies, the same on every answer
def _policy_item(policy: str, rate: float, burst: int) -> str:
    burst = max(1, burst)
    return f'"{policy}";q={burst};w={max(1, math.ceil(burst / rate))}'


_standings: contextvars.ContextVar[tuple[Standing, ...]] = contextvars.ContextVar(
    "ratelimit_standings", default=()
)


def standing_note(policy: str, limit: Limit, tokens: float | None) -> None:
    """Record for the answer to this request what `policy`'s bucket holds after it (nothing
    for an unlimited or stopped bucket, or one Redis could not count)."""
    if tokens is None or limit.per_second is None or limit.per_second <= 0:
        return
    kept = tuple(s for s in _standings.get() if s.policy != policy)
    _standings.set((*kept, Standing(policy, limit, tokens)))


def standing_headers() -> dict[str, str]:
    standings = _standings.get()
    if not standings:
        return {}
    return {
        "RateLimit-Policy": ", ".join(s.policy_item() for s in standings),
        "RateLimit": ", ".join(s.item() for s in standings),
    }


class RateLimitHeadersMiddleware:
    """Writes the buckets this request took from on its answer (a 429 included)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _standings.set(())
        try:
            response = self.get_response(request)
            for name, value in standing_headers().items():
                response[name] = value
            return response
        finally:
            _standings.reset(token)
