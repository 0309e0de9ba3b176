"""Celery beat's scheduler: RedBeat, so that beat runs on every host and one schedules.

Each beat process takes a Redis lock (`redbeat::lock` in the broker's Redis) before it sends
anything; the others wait for it, polling every CELERY_BEAT_MAX_LOOP_INTERVAL. The holder
extends the lock on every tick; if its host is lost the lock expires after
BEAT_LOCK_TIMEOUT_SECONDS and a waiting beat takes over, carrying on the schedule RedBeat
keeps in Redis (docs/operations.md, "What is single"). A sweep sent twice around a takeover
is harmless: every task is idempotent.

What this adds to RedBeat: a beat that loses the lock (the broker's Redis restarted with no
persistence, or this process stalled past the timeout) goes back to waiting for it and
reinstalls the schedule, and a beat that cannot reach Redis waits for it, instead of both
exiting, which would stop `make run` and, without a supervisor, the sweeps.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Celery
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, RedBeatScheduler, get_redis

log = logging.getLogger("celery.beat")
REDBEAT_SETTINGS = ("redbeat_lock_timeout", "redbeat_key_prefix", "redbeat_redis_options")


class Scheduler(RedBeatScheduler):
    def __init__(self, app: Celery, **kwargs: Any) -> None:
        # RedBeat looks its settings up by their bare names, which the CELERY_ namespace of
        # ours hides from it: name them here. Its Redis is the broker's, as each settings
        # module sets it.
        conf = app.conf
        conf.update({name: conf.get(name) for name in REDBEAT_SETTINGS if conf.get(name)})
        conf.redbeat_redis_url = conf.get("redbeat_redis_url") or conf.broker_url
        super().__init__(app, **kwargs)

    def tick(self, **kwargs: Any) -> float:
        try:
            if self.lock is None:
                self._lock_take()
            return super().tick(**kwargs)
        except redis.exceptions.LockError:
            log.warning("beat: lost the lock (Redis lost it, or it expired); waiting for it")
            self.lock = None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            log.warning("beat: Redis does not answer; nothing is sent until it does")
        return self.max_interval

    def _lock_take(self) -> None:
        """Block until this process holds the lock (as RedBeat's beat_init receiver does), then
        reinstall the static schedule, which Redis may have lost with the lock."""
        client = get_redis(self.app)
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
        lock.acquire()
        log.info("beat: Acquired lock")
        self.lock = lock
        self.setup_schedule()
