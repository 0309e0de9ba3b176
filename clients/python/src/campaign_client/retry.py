"""When to retry a request and how long to wait first.

The integrator's guide ("Errors and what to do", "Rate limits and 429"): retry a time-out, a
dropped connection, a 429 and a 5xx with the same Idempotency-Key, after `Retry-After`
seconds when the answer gives them. Every wait gets jitter, so that bots refused in the same
second do not all come back in the same second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` counts the first try. A wait longer than `max_wait` (a Retry-After of
    two minutes, say) is not waited: the error is raised at once, for the caller to decide.
    No retry starts later than `max_elapsed` seconds after the first try.

    Without Retry-After the wait is exponential from `base_delay`, capped at `max_delay`,
    drawn between half of it and all of it. With Retry-After it is that many seconds plus up
    to `retry_after_jitter` of them (1 s becomes 1 to 1.5 s)."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_wait: float = 30.0
    max_elapsed: float = 60.0
    retry_after_jitter: float = 0.5
    # 429 and 503 tell us to come back; 500, 502 and 504 may have passed before the request
    # was decided. A keyed request is safe to repeat whatever happened.
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed."""
        if retry_after is not None:
            return retry_after + rng.uniform(0, retry_after * self.retry_after_jitter)
        step = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return rng.uniform(step / 2, step)


NO_RETRY = RetryPolicy(max_attempts=1)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds (what the service sends) or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - (now or datetime.now(timezone.utc))).total_seconds())
