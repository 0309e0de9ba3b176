"""Fast, forgetful state in Redis: the client every part shares, and the web front door's
count of shed requests.

PostgreSQL is the truth. Everything kept in Redis can vanish (a Redis restart keeps nothing)
and is rebuilt from the database; every caller survives a RedisError. The orders' waiting
line (tickets, drain rate, nudge marks, intake's admission script) is orders':
orders/waiting_line.py.
"""

from __future__ import annotations

import logging
import time
from functools import cache

import hiredis
import redis
from django.conf import settings
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer

log = logging.getLogger(__name__)


@cache
def client() -> redis.Redis:
    """One pooled client per process. Short time-outs: Redis is an optimisation, never a wait."""
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        health_check_interval=30,
        decode_responses=True,
        command_packer=CommandPacker(),
    )


class CommandPacker:
    """A command's arguments into Redis's protocol by hiredis alone (docs/performance.md,
    "Redis commands packed by hiredis").

    redis-py already packs with `hiredis.pack_command`, but first runs its own encoder over
    every argument in Python: four type checks and a `repr` or `encode` each, 43 % of the
    intake script's call with its 22 arguments. hiredis takes str, bytes, int and float as
    they are and writes the same bytes (UTF-8 text, `repr` of numbers; tests/infra/
    test_fast.py compares the two). Whatever it refuses (a bool, None, a memoryview, a
    bytearray) goes to redis-py's own packer, which packs it or raises its usual DataError."""

    def __init__(self) -> None:
        self._fallback = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)

    def pack(self, *args: object) -> list[bytes]:
        name = args[0]
        words = name.split() if isinstance(name, (str, bytes)) else [name]
        if len(words) > 1:  # "CLIENT SETNAME": the server wants the words apart
            args = (*words, *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            return self._fallback.pack(*(bytes(a) if isinstance(a, bytearray) else a for a in args))


def key(*parts: object) -> str:
    return ":".join(["cop", *(str(p) for p in parts)])


# --- Requests shed by the web workers' front door (infra/server.py) ------------------------
# Each worker process adds its count once a second, into per-minute keys kept for a day.
SHED_KEEP_SECONDS = 86_400


def shed_record(count: int) -> None:
    minute = int(time.time()) // 60
    try:
        pipe = client().pipeline(transaction=False)
        pipe.incrby(key("shed", "total"), count)
        pipe.incrby(key("shed", "minute", minute), count)
        pipe.expire(key("shed", "minute", minute), SHED_KEEP_SECONDS)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not record %d shed requests", count, exc_info=True)


def shed_counts(minutes: int = 15) -> tuple[int, int] | None:
    """(requests shed since Redis last started, shed over the last `minutes`), or None when
    Redis cannot tell."""
    now = int(time.time()) // 60
    keys = [key("shed", "total")] + [
        key("shed", "minute", m) for m in range(now - minutes, now + 1)
    ]
    try:
        values = client().mget(keys)
    except redis.RedisError:
        return None
    total, *recent = (int(v or 0) for v in values)
    return total, sum(recent)
