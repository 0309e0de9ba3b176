"""Readiness as a load balancer sees it: a real gunicorn whose Redis (and broker) is a private
redis-server that the test stops and starts again. /readyz goes 503 naming what failed, fast,
while /healthz stays 200; it is 200 again once Redis is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.chaos.engines import PrivateRedis
from tests import stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.pipeline]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(data_dir=tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def web(worker_env: dict[str, str], private_redis: PrivateRedis, log_dir: Path) -> Iterator[str]:
    env = {
        **worker_env,
        "TEST_REDIS_URL": f"{private_redis.url}/0",
        "TEST_CELERY_BROKER_URL": f"{private_redis.url}/1",
        "READY_TIMEOUT_SECONDS": "0.5",
    }
    url, process = stack.start_web(log_dir / "readiness-gunicorn.log", env=env, workers=1)
    yield url
    stack.stop(process)


def poll_until(url: str, status: int, timeout: float = 15.0) -> httpx.Response:
    def answered() -> httpx.Response | None:
        response = httpx.get(url, timeout=5)
        return response if response.status_code == status else None

    return wait_until(answered, timeout=timeout, interval=0.2, what=f"{status} from {url}")


def test_readiness_follows_redis_down_and_back(web: str, private_redis: PrivateRedis) -> None:
    # given: everything answers
    ready = httpx.get(f"{web}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "broker": "ok"}

    # when: Redis dies
    private_redis.kill()
    started = time.monotonic()
    down = httpx.get(f"{web}/readyz", timeout=5)
    took = time.monotonic() - started

    # then: 503 at once, naming Redis and the broker (the same server), not PostgreSQL
    assert down.status_code == 503, down.text
    assert down.json()["failed"] == ["broker", "redis"]
    assert down.json()["checks"]["postgres"] == "ok"
    assert took < 2.0
    assert httpx.get(f"{web}/healthz", timeout=5).status_code == 200  # alive all the same

    # when: Redis is back (empty, on the same port)
    private_redis.start()

    # then: ready again, without a restart of the web process
    back = poll_until(f"{web}/readyz", 200)
    assert back.status_code == 200, back.text
