"""Shared fixtures. Real PostgreSQL (pytest-django's test database) and real Redis (DB 15
for the app, DB 14 for the Celery broker, so that flushing one never touches the other)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from coupons import selectors as coupons_selectors
from infra import fast
from infra.memo import copies_version
from orders import waiting_line
from shop import services as shop_services
from shop.models import ApiClient
from shop.selectors import bad_key_cache, key_cache, product_cache, rate_limits_forget
from tests import stack
from tests.factories.shop import ApiClientFactory

LOG_DIR = stack.PROJECT_ROOT / ".run" / "test-logs"


@pytest.fixture(autouse=True)
def _fresh_fast_state() -> Iterator[None]:
    """Every test starts with empty fast state: Redis DB 15 flushed, caches cleared."""
    fast.client().flushdb()
    _caches_clear()
    yield
    _caches_clear()


def _caches_clear() -> None:
    copies_version.forget()
    rate_limits_forget()
    waiting_line.seconds_rates.forget()
    for cache in (
        key_cache,
        bad_key_cache,
        product_cache,
        coupons_selectors.campaign_cache,
        coupons_selectors.campaign_by_slug_cache,
        coupons_selectors.sold_out_cache,
    ):
        cache.clear()


@pytest.fixture
def chatbot(db: None) -> ApiClient:
    return ApiClientFactory()


def api_for(client: ApiClient) -> APIClient:
    """An APIClient that authenticates the way a chatbot does: a real key, through the real
    authentication class."""
    raw = shop_services.api_key_issue(client_id=client.pk).raw
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


@pytest.fixture
def api(chatbot: ApiClient) -> APIClient:
    return api_for(chatbot)


# --- The real stack, as processes ------------------------------------------------------------


@pytest.fixture(scope="session")
def log_dir() -> Path:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR


@pytest.fixture(scope="session")
def sandbox(log_dir: Path) -> Iterator[httpx.Client]:
    """The sandbox gateway at PAYMENT_GATEWAY_URL; yields a client for its control endpoints."""
    port = int(settings.PAYMENT_GATEWAY_URL.rsplit(":", 1)[1])
    process = stack.start_sandbox(port, log_dir / "sandbox.log")
    control = httpx.Client(
        base_url=settings.PAYMENT_GATEWAY_URL, headers=stack.SANDBOX_AUTH, timeout=5
    )
    yield control
    control.close()
    stack.stop(process)


@pytest.fixture(scope="session")
def test_sandbox(log_dir: Path) -> Iterator[httpx.Client]:
    """A second sandbox, with its own key, at PAYMENT_TEST_GATEWAY_URL: the gateway of test
    orders (docs/integrator-guide.md, Test mode); its ledger is reset by `test_gateway`."""
    port = int(settings.PAYMENT_TEST_GATEWAY_URL.rsplit(":", 1)[1])
    key = settings.PAYMENT_TEST_GATEWAY_KEY
    process = stack.start_sandbox(port, log_dir / "test-sandbox.log", key=key)
    control = httpx.Client(
        base_url=settings.PAYMENT_TEST_GATEWAY_URL,
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )
    yield control
    control.close()
    stack.stop(process)


@pytest.fixture
def test_gateway(test_sandbox: httpx.Client) -> httpx.Client:
    """The test-mode sandbox with an empty ledger and its start-up config."""
    test_sandbox.post("/_sandbox/reset", json={"config": True}).raise_for_status()
    return test_sandbox


@pytest.fixture
def gateway(sandbox: httpx.Client) -> httpx.Client:
    """The sandbox with an empty ledger and its start-up config."""
    sandbox.post("/_sandbox/reset", json={"config": True}).raise_for_status()
    return sandbox


def database_url_of_tests() -> str:
    """The test database as a URL for worker processes (host may be a socket directory)."""
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    socket_dir = db.get("OPTIONS", {}).get("host")
    if socket_dir:  # the embedded server of devtools.services: a Unix socket
        return f"postgres://{db['USER']}{password}@/{db['NAME']}?host={quote(socket_dir, safe='/')}"
    return f"postgres://{db['USER']}{password}@{db['HOST']}{port}/{db['NAME']}"


@pytest.fixture(scope="session")
def worker_env(django_db_setup: None) -> dict[str, str]:
    """What a worker process needs to share this test session's database and broker."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # no stale messages from old runs
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url_of_tests(),
        "PYTHONUNBUFFERED": "1",
    }


ALL_QUEUES = "reservations,payments,callbacks,maintenance"


@pytest.fixture(scope="module")
def worker(worker_env: dict[str, str], sandbox: httpx.Client, log_dir: Path) -> Iterator[None]:
    """A real Celery worker process consuming every queue, for a module of pipeline tests."""
    process = stack.start_worker(log_dir / "worker.log", queues=ALL_QUEUES, env=worker_env)
    yield
    stack.stop(process)


@pytest.fixture
def start_worker(
    worker_env: dict[str, str], sandbox: httpx.Client, log_dir: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start worker processes of a test's own (queues, settings by env); all killed after."""
    started: list[subprocess.Popen[bytes]] = []
    # The test's own workers start from an empty broker: nudges left by earlier tests are noise.
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()

    def start(
        queues: str = ALL_QUEUES, *, log: str = "own-workers.log", node: str = "", **env: str
    ) -> subprocess.Popen[bytes]:
        """`log` and `node` set one worker apart from others the test starts (its own log to
        count its work in, its own Celery node name); with `node`, one pool process."""
        process = stack.start_worker(
            log_dir / log,
            queues=queues,
            env={**worker_env, **env},
            node=node,
            concurrency=1 if node else 2,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        stack.stop(process, sig=signal.SIGKILL)
