"""A global token bucket in Redis, shared by every process on every machine.

One Lua script takes up to `want` tokens atomically and says how long until the next one;
the clock is the Redis server's (TIME), so machines with skewed clocks share one bucket.
Celery's own `rate_limit` is per worker process: not enough for a provider's quota.

If Redis cannot be reached the bucket fails open: the gateway's own 429s are handled as
"retry later", and refusing every order because a cache is down would be worse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache

import redis
from redis.commands.core import Script

from infra import fast

log = logging.getLogger(__name__)

# KEYS[1]: the bucket. ARGV: rate (tokens/s, > 0), burst (max tokens), want.
# Returns {granted, seconds until the next token as a string}.
_TAKE_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
local wait = 0
if granted < want then
  wait = (1 - tokens) / rate
  if wait < 0 then wait = 0 end
end
return {granted, tostring(wait)}
"""

UNLIMITED_WAIT = 0.0
STOPPED_WAIT = 5.0  # a rate of 0 stops the work; look again this often


@dataclass(frozen=True)
class Limit:
    """`per_second` None: unlimited; 0: stopped (nothing granted)."""

    per_second: float | None
    burst: int = 1


@dataclass(frozen=True)
class Grant:
    granted: int
    retry_after: float  # seconds until a token is likely (0 when all were granted)


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
        granted, wait = _script()(
            keys=[f"cop:bucket:{bucket}"], args=[limit.per_second, burst, want]
        )
    except redis.RedisError:
        log.warning("rate limiter unavailable for %s; failing open", bucket, exc_info=True)
        return Grant(granted=want, retry_after=UNLIMITED_WAIT)
    return Grant(granted=int(granted), retry_after=float(wait))
