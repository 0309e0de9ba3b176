"""Fast, forgetful state in Redis: the client every part shares, and the web front door's
count of shed requests.

PostgreSQL is the truth. Everything kept in Redis can vanish (a Redis restart keeps nothing)
and is rebuilt from the database; every caller survives a RedisError. The orders' waiting
line (tickets, drain rate, nudge marks, intake's admission script) is orders':
orders/waiting_line.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from functools import cache
from typing import Any

import hiredis
import redis
from django.conf import settings
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer
from redis.exceptions import NoScriptError

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
    "Counting instructions").

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
    return "cop:" + ":".join(map(str, parts))


# --- Scripts on a connection each thread holds ----------------------------------------------
# The intake's and the claim's one round trip each. Through redis-py a command costs about
# 90,000 instructions of Python besides its own send and read: the pool's checkout and return
# (a lock, a readiness poll of the socket) and the client's per-command bookkeeping
# (docs/performance.md, "Counting instructions").

_held = threading.local()


class HeldScript:
    """A Lua script that runs by EVALSHA on the calling thread's own connection to Redis,
    held between calls instead of checked out of the pool: what `client().register_script`
    gives, for the scripts every request runs. Loads the script when Redis does not have it
    (a restart, SCRIPT FLUSH); raises redis-py's errors, so callers fail open as before."""

    def __init__(self, lua: str) -> None:
        self.lua = lua
        self.sha = hashlib.sha1(lua.encode()).hexdigest()  # noqa: S324 (Redis names it so)

    def __call__(self, keys: Sequence[str] = (), args: Sequence[object] = ()) -> Any:
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return held_call(command)
        except NoScriptError:
            held_call(("SCRIPT", "LOAD", self.lua))
            return held_call(command)


def held_call(command: tuple[object, ...]) -> Any:
    """One command on this thread's own connection. A broken connection (Redis restarted or
    went away) is closed and the command sent once more on a new one, as redis-py's retry
    would; a reply that is an error leaves the connection as it was and is raised."""
    conn = _held_connection()
    try:
        return _send(conn, command)
    except (redis.ConnectionError, redis.TimeoutError):
        conn.disconnect()  # the next send connects afresh
    try:
        return _send(conn, command)
    except (redis.ConnectionError, redis.TimeoutError):
        conn.disconnect()
        raise


def _send(conn: redis.Connection, command: tuple[object, ...]) -> Any:
    conn.send_packed_command(conn.pack_command(*command), check_health=False)
    return conn.read_response()


def _held_connection() -> redis.Connection:
    """This thread's connection, with the shared client's settings; a new one in a process
    forked from the one that made it (its socket is the parent's)."""
    pid = os.getpid()
    held = getattr(_held, "conn", None)
    if held is None or held[0] != pid:
        pool = client().connection_pool
        held = _held.conn = (pid, pool.connection_class(**pool.connection_kwargs))
    return held[1]


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
