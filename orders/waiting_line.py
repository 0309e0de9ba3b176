"""The orders' waiting line, in Redis: tickets and places, the drain rate and estimates, the
coalesced nudge marks, and intake's admission in one round trip.

The line is the whole pipeline: an order takes a ticket at intake and leaves the line when it
is final (paid, or told why not), not when the reservation worker takes it. So a position
counts every order of the campaign ahead of it that is not final yet, in whichever stage, the
drain rate is the rate at which the campaign's orders become final, and the wait promised at
intake is the wait until the order is final. Orders reach their end in ticket order, near
enough: each stage takes the oldest first.

Per line: `in` (tickets given), `out` (tickets whose order left the line: final, parked, or a
ticket voided), one `rate` counter per second of orders made final, and `aside`: the orders
whose payment is being retried (the gateway refused or did not answer). Those still count for
the line's length (admission, the ceiling), but not in a place or a wait: they hold nobody up,
and counting them ahead of everyone made the promise the mean wait, stragglers included,
rather than the wait of the order being told. The sweep sets `aside` from the database.

PostgreSQL is the truth. Everything here can vanish (a Redis restart keeps nothing) and is
rebuilt from the database by the sweep; every caller survives a RedisError.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from redis.commands.core import Script

from infra import ratelimit
from infra.fast import HeldScript, client, key

log = logging.getLogger(__name__)

# How far back the drain rate looks, and what it assumes before anything has drained.
RATE_WINDOW_SECONDS = 30
NUDGE_TTL_SECONDS = 30


def queue_name(campaign_id: int | None) -> str:
    return "none" if campaign_id is None else str(campaign_id)


@dataclass(frozen=True)
class QueueSpot:
    position: int
    estimated_wait_seconds: int


NO_WAIT = QueueSpot(position=0, estimated_wait_seconds=0)


def tickets_done(campaign_id: int | None, count: int) -> None:
    """Record that `count` orders left the line (final, or parked): moves every position up
    and feeds the drain rate."""
    if count <= 0:
        return
    name = queue_name(campaign_id)
    second = int(time.time())
    try:
        pipe = client().pipeline(transaction=False)
        pipe.incrby(key("q", name, "out"), count)
        pipe.incrby(key("q", name, "rate", second), count)
        pipe.expire(key("q", name, "rate", second), RATE_WINDOW_SECONDS * 2)
        pipe.execute()
    except redis.RedisError:
        log.warning("queue progress not recorded for campaign %s", campaign_id, exc_info=True)


def drain_rate(campaign_id: int | None) -> float:
    """Orders per second that left this line over the last RATE_WINDOW_SECONDS (0 if none)."""
    name = queue_name(campaign_id)
    now = int(time.time())
    keys = [key("q", name, "rate", s) for s in range(now - RATE_WINDOW_SECONDS, now)]
    try:
        values = client().mget(keys)
    except redis.RedisError:
        return 0.0
    return _rate_from(values)


def _rate_from(values: list) -> float:
    """The drain rate from the window's per-second counters, oldest first (None: no count)."""
    counts = [int(v) for v in values if v is not None]
    if not counts:
        return 0.0
    # Measure over the seconds since draining started inside the window, not the whole window,
    # so a burst that began 3 s ago is not diluted by 27 idle seconds.
    first = next(i for i, v in enumerate(values) if v is not None)
    return sum(counts) / max(1, RATE_WINDOW_SECONDS - first)


def estimate(position: int, rate: float) -> int:
    if position <= 0:
        return 0
    rate = rate or settings.QUEUE_ASSUMED_DRAIN_RATE
    return max(1, math.ceil(position / rate))


class SecondsRates:
    """The drain rate of each line as this process last read it, for the current second only.

    The window's counters are the RATE_WINDOW_SECONDS before the current second, and
    tickets_done counts into the current second, so within one second the window does not
    move: every poll of that second would read the same 30 counters. The first poll of a
    second reads them with `out` and `aside` and keeps the rate; the others read 2 keys, not
    32. Thread-safe without a lock: the second and its rates are swapped as one tuple, and a
    rate lost to a race is read again."""

    def __init__(self) -> None:
        self._now: tuple[int, dict[str, float]] = (0, {})

    def get(self, name: str, second: int) -> float | None:
        at, rates = self._now
        return rates.get(name) if at == second else None

    def put(self, name: str, second: int, rate: float) -> None:
        at, rates = self._now
        if at != second:  # a new second: the last one's rates go, so the dict never grows old
            rates = {}
            self._now = (second, rates)
        rates[name] = rate

    def forget(self) -> None:
        self._now = (0, {})


seconds_rates = SecondsRates()


def spot(campaign_id: int | None, ticket: int | None) -> QueueSpot | None:
    """Where a ticket stands now, or None when Redis cannot tell (the caller falls back).
    One round trip (the chatbot polls this): `out` and `aside`, and the window's drain
    counters only on the line's first poll of this second in this process (SecondsRates)."""
    if ticket is None:
        return None
    name = queue_name(campaign_id)
    now = int(time.time())
    keys = [key("q", name, "out"), key("q", name, "aside")]
    rate = seconds_rates.get(name, now)
    if rate is None:
        keys += [key("q", name, "rate", s) for s in range(now - RATE_WINDOW_SECONDS, now)]
    try:
        out, aside, *rates = client().mget(keys)
    except redis.RedisError:
        return None
    if rate is None:
        rate = _rate_from(rates)
        seconds_rates.put(name, now, rate)
    position = max(1, ticket - int(out or 0) - int(aside or 0))
    return QueueSpot(position=position, estimated_wait_seconds=estimate(position, rate))


def backlog(campaign_id: int | None) -> QueueSpot | None:
    """How many orders wait in the campaign's line and how long the last one will wait."""
    name = queue_name(campaign_id)
    try:
        got_in, got_out = client().mget([key("q", name, "in"), key("q", name, "out")])
    except redis.RedisError:
        return None
    waiting = max(0, int(got_in or 0) - int(got_out or 0))
    return QueueSpot(
        position=waiting, estimated_wait_seconds=estimate(waiting, drain_rate(campaign_id))
    )


# Longer than a few sweeps: a count nobody refreshes (no sweep running) soon stops counting.
ASIDE_TTL_SECONDS = 60


def aside_set(counts: dict[int | None, int]) -> None:
    """The orders of each line whose payment is being retried, counted by the sweep."""
    try:
        pipe = client().pipeline(transaction=False)
        for campaign_id, count in counts.items():
            pipe.set(key("q", queue_name(campaign_id), "aside"), count, ex=ASIDE_TTL_SECONDS)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not record the orders set aside", exc_info=True)


def tickets_back(campaign_id: int | None, count: int) -> None:
    """`count` parked orders went back into the line: they count as waiting again."""
    if count <= 0:
        return
    try:
        client().decrby(key("q", queue_name(campaign_id), "out"), count)
    except redis.RedisError:
        log.warning("queue return not recorded for campaign %s", campaign_id, exc_info=True)


# Both counters of a line at once, and only when `in` is missing (Redis lost the line): `out`
# is then overwritten, even if a worker's progress re-created it on its own meanwhile (an
# INCRBY on a missing key), which would leave nearly every ticket ever given counted as
# waiting. Live counters are never moved.
_REBUILD_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


@cache
def _rebuild_script() -> Script:
    return client().register_script(_REBUILD_LUA)


def queue_rebuild(campaign_id: int | None, *, last_ticket: int, live: int) -> bool:
    """After Redis lost its state, put the line back from the database: `in` becomes the
    highest ticket ever given and `out` that less the `live` orders (in line, not final), so
    the line's length is exactly the orders not yet final. True when this call rebuilt it."""
    name = queue_name(campaign_id)
    try:
        done = _rebuild_script()(
            keys=[key("q", name, "in"), key("q", name, "out")],
            args=[last_ticket, max(0, last_ticket - live)],
        )
    except redis.RedisError:
        return False
    return bool(done)


def queue_known(campaign_id: int | None) -> bool:
    try:
        return bool(client().exists(key("q", queue_name(campaign_id), "in")))
    except redis.RedisError:
        return True  # cannot tell; do not rebuild blind


def nudge_mark(kind: str, name: str, lane: int = 0) -> str:
    """The mark of one lane of a line of work. Lane 0's is the line's own mark, the one intake
    claims (in the admission script); lanes 1.. are claimed by workers recruiting help."""
    return key("nudge", kind, name) if lane == 0 else key("nudge", kind, name, lane)


# The first lane whose mark is free, claimed: one round trip for a worker that wants help.
_RECRUIT_LUA = """
for i = 1, #KEYS do
  if redis.call('SET', KEYS[i], 1, 'NX', 'EX', tonumber(ARGV[1])) then return i - 1 end
end
return -1
"""


@cache
def _recruit_script() -> Script:
    return client().register_script(_RECRUIT_LUA)


def nudge_recruit(kind: str, name: str, lanes: int) -> int | None:
    """Claim the first free lane of this line (of `lanes`): the caller publishes a nudge for
    it, so one more process drains the line. None when every lane is draining already (or
    Redis cannot tell: a worker that cannot recruit just goes on alone)."""
    try:
        lane = int(
            _recruit_script()(
                keys=[nudge_mark(kind, name, i) for i in range(lanes)], args=[NUDGE_TTL_SECONDS]
            )
        )
    except redis.RedisError:
        return None
    return lane if lane >= 0 else None


def nudge_claim(kind: str, name: str) -> bool:
    """True when the caller should publish a nudge: nobody has announced this work yet.

    Thousands of orders a second share one message; if Redis is down we publish anyway
    (duplicate nudges are harmless, a missing one only waits for the sweep).
    """
    try:
        return bool(client().set(key("nudge", kind, name), 1, nx=True, ex=NUDGE_TTL_SECONDS))
    except redis.RedisError:
        return True


def nudge_release(kind: str, name: str, lane: int = 0) -> None:
    """A worker about to look for work one last time drops the mark, so that anything committed
    after this moment publishes a fresh nudge (no lost wake-up)."""
    try:
        client().delete(nudge_mark(kind, name, lane))
    except redis.RedisError:
        log.warning("could not release nudge %s:%s", kind, name, exc_info=True)


def nudge_hold(kind: str, name: str, lane: int = 0) -> None:
    try:
        client().set(nudge_mark(kind, name, lane), 1, ex=NUDGE_TTL_SECONDS)
    except redis.RedisError:
        log.warning("could not hold nudge %s:%s", kind, name, exc_info=True)


# --- Intake in one round trip ------------------------------------------------------------------
# Everything an order needs from Redis on its way in, in one atomic script: the client's and
# the customer's token buckets (infra.ratelimit.BUCKET_LUA), the place in the campaign's line
# and its ceiling, the coalesced nudge mark, and what the position and wait are computed from.
# Every check comes before the first write (a Lua error keeps the writes already made).
# A ticket is taken only in a line Redis still knows: after a restart the line is first
# rebuilt from the database (queue_rebuild), or new tickets would start again from 1, ahead of
# older orders (ADMIT_LINE_UNKNOWN tells the caller to rebuild).
# A request whose Idempotency-Key was seen in the last IDEMPOTENCY_MARK_SECONDS is a replay
# (or a duplicate in flight): it takes no ticket, so replays never move anyone in line.
# The line is full at its ceiling of orders not yet final, or when the new order's wait, at
# the drain measured over the window (the assumed rate before anything drained), would pass
# the longest wait we promise: the door then refuses early, rather than accept orders the
# pipeline would finish ever later.
# KEYS: client bucket, customer bucket, line in, line out, nudge mark, key mark, line aside.
# ARGV: client rate, client burst, customer rate, customer burst (rate < 0: unlimited),
#       ceiling (0: none), nudge TTL, key mark TTL, the line's drain counter prefix, the
#       window's first second, its length, the longest wait in seconds (0: none), the
#       assumed drain rate.
# Returns {ADMIT_REFUSED, wait, 1 client's bucket | 2 customer's} | {ADMIT_LINE_UNKNOWN}
#       | {ADMIT_LINE_FULL, waiting, drained in the window, seconds since the first drain}
#       | {ADMIT_REPLAY} | {ADMIT_OK, ticket, out + aside, nudge claimed, drained in the
#       window, seconds of the window since the first drain, the client's and the customer's
#       tokens left (-1: not limited)}. The drain counters are read by names
#       built here (one Redis server; a cluster would need them passed as KEYS).
_ADMIT_LUA = ratelimit.BUCKET_LUA + (
    """
if KEYS[6] ~= '' and redis.call('EXISTS', KEYS[6]) == 1 then return {4} end
local now = bucket_now()
-- One token of a bucket, not taken yet: tokens left, ts, 0 | nil, nil, seconds to wait
-- (none for no limit, rate < 0; a rate of 0 stops the requests: ratelimit.STOPPED_WAIT).
local function peek(key, rate, burst)
  if rate < 0 then return nil, nil, 0 end
  if rate == 0 then return nil, nil, BUCKET_STOPPED_WAIT end
  local tokens, ts = bucket_level(key, rate, burst, now)
  if tokens < 1 then return nil, nil, bucket_wait(tokens, rate) end
  return tokens - 1, ts, 0
end
local c_rate, c_burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local u_rate, u_burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local c_left, c_ts, c_wait = peek(KEYS[1], c_rate, c_burst)
if c_left == nil and c_rate >= 0 then return {0, tostring(c_wait), 1} end
local u_left, u_ts, u_wait = nil, nil, 0
if KEYS[2] ~= '' then
  u_left, u_ts, u_wait = peek(KEYS[2], u_rate, u_burst)
  if u_left == nil and u_rate >= 0 then return {0, tostring(u_wait), 2} end
end
local given = redis.call('GET', KEYS[3])
if not given then return {1} end
local out = tonumber(redis.call('GET', KEYS[4]) or '0')
local waiting = tonumber(given) - out
local first, window = tonumber(ARGV[9]), tonumber(ARGV[10])
local names = {}
for s = first, first + window - 1 do names[#names + 1] = ARGV[8] .. s end
local counts = redis.call('MGET', unpack(names))
local drained, since = 0, 0
for i = 1, window do
  if counts[i] then
    drained = drained + tonumber(counts[i])
    if since == 0 then since = window - i + 1 end
  end
end
local ceiling, longest = tonumber(ARGV[5]), tonumber(ARGV[11])
local rate = tonumber(ARGV[12])
if since > 0 then rate = drained / since end
if (ceiling > 0 and waiting >= ceiling)
   or (longest > 0 and rate > 0 and (waiting + 1) / rate > longest) then
  return {2, waiting, drained, since}
end
if c_left ~= nil then bucket_store(KEYS[1], c_rate, c_burst, c_left, c_ts) end
if u_left ~= nil then bucket_store(KEYS[2], u_rate, u_burst, u_left, u_ts) end
local ticket = redis.call('INCR', KEYS[3])
if KEYS[6] ~= '' then redis.call('SET', KEYS[6], 1, 'EX', tonumber(ARGV[7])) end
local claimed = 0
if redis.call('SET', KEYS[5], 1, 'NX', 'EX', tonumber(ARGV[6])) then claimed = 1 end
local aside = tonumber(redis.call('GET', KEYS[7]) or '0')
return {3, ticket, out + aside, claimed, drained, since, tostring(c_left or -1),
        tostring(u_left or -1)}
"""
)
ADMIT_REFUSED, ADMIT_LINE_UNKNOWN, ADMIT_LINE_FULL, ADMIT_OK, ADMIT_REPLAY = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Admission:
    """What the intake script said. `ticket` None: Redis could not be reached (intake goes on
    without a place in line; the sweep and the worker do not need one)."""

    outcome: int
    ticket: int | None = None
    spot: QueueSpot = NO_WAIT
    nudge: bool = True
    retry_after: float = 0.0
    waiting: int = 0
    rate: float = 0.0  # the line's drain (orders made final per second) over the window


@cache
def _admit_script() -> HeldScript:
    return HeldScript(_ADMIT_LUA)


def _limit_args(limit: tuple[float | None, int]) -> list[float]:
    per_second, burst = limit
    return [-1, 1] if per_second is None else [per_second, max(1, burst)]


def admit(
    campaign_id: int | None,
    *,
    client_bucket: str,
    client_limit: tuple[float | None, int],
    customer_bucket: str,
    customer_limit: tuple[float | None, int],
    ceiling: int,
    longest_wait: float,
    nudge_kind: str,
    request_key: str = "",
    request_key_seconds: int = 300,
) -> Admission:
    """One round trip: take the client's and the customer's tokens, a ticket in the campaign's
    line (unless it holds `ceiling` orders not yet final, or a new order would wait longer
    than `longest_wait` seconds at the line's drain: ADMIT_LINE_FULL) and the nudge mark; say
    where the ticket stands. With `request_key` (client and Idempotency-Key), a key seen
    within `request_key_seconds` is answered ADMIT_REPLAY and takes nothing."""
    name = queue_name(campaign_id)
    keys = [
        ratelimit.bucket_key(client_bucket),
        ratelimit.bucket_key(customer_bucket) if customer_bucket else "",
        key("q", name, "in"),
        key("q", name, "out"),
        key("nudge", nudge_kind, name),
        key("seen", request_key) if request_key else "",
        key("q", name, "aside"),
    ]
    args = [*_limit_args(client_limit), *_limit_args(customer_limit), ceiling, NUDGE_TTL_SECONDS]
    first_second = int(time.time()) - RATE_WINDOW_SECONDS
    args += [request_key_seconds, key("q", name, "rate", ""), first_second, RATE_WINDOW_SECONDS]
    args += [longest_wait, settings.QUEUE_ASSUMED_DRAIN_RATE]
    try:
        got = _admit_script()(keys=keys, args=args)
    except redis.RedisError:
        log.warning("intake admission unavailable for campaign %s", campaign_id, exc_info=True)
        return Admission(outcome=ADMIT_OK)
    outcome = int(got[0])
    policies = (("client", client_limit), ("customer", customer_limit))
    if outcome == ADMIT_REFUSED:
        wait = float(got[1])
        policy, (per_second, burst) = policies[int(got[2]) - 1]
        if per_second:  # what the refusing bucket holds, from its wait: 1 - wait * rate
            left = max(0.0, 1 - wait * per_second)
            ratelimit.standing_note(policy, ratelimit.Limit(per_second, burst), left)
        return Admission(outcome=outcome, retry_after=wait)
    if outcome == ADMIT_LINE_FULL:
        waiting, drained, since = (int(v) for v in got[1:4])
        return Admission(outcome=outcome, waiting=waiting, rate=_window_rate(drained, since))
    if outcome != ADMIT_OK:
        return Admission(outcome=outcome)
    ticket, ahead_done, claimed, drained, since = (int(v) for v in got[1:6])
    for (policy, (per_second, burst)), left in zip(policies, got[6:8], strict=True):
        if float(left) >= 0 and per_second is not None:  # the answer's RateLimit headers
            ratelimit.standing_note(policy, ratelimit.Limit(per_second, burst), float(left))
    position = max(1, ticket - ahead_done)
    rate = _window_rate(drained, since)
    return Admission(
        outcome=outcome,
        ticket=ticket,
        spot=QueueSpot(position=position, estimated_wait_seconds=estimate(position, rate)),
        nudge=claimed,
        rate=rate,
    )


def _window_rate(drained: int, since: int) -> float:
    """The drain rate from the script's sums, as _rate_from measures it (0: none yet)."""
    return drained / since if since else 0.0


def ticket_void(campaign_id: int | None) -> None:
    """A ticket was taken for a request that turned out to be a replay (its key's mark had
    expired or Redis had restarted): count it as gone, so the line's length stays true
    (positions move up by one, the drain rate does not)."""
    try:
        client().incr(key("q", queue_name(campaign_id), "out"))
    except redis.RedisError:
        log.warning("could not void a ticket of campaign %s", campaign_id, exc_info=True)
