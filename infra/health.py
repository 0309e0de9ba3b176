"""/healthz, /readyz and /metrics, answered by the first middleware.

They are for the load balancer, the orchestrator and Prometheus, which reach a process by its
address: so they are answered before host validation (ALLOWED_HOSTS), the HTTPS redirect,
sessions, API keys, rate limits and the request metrics. Every other request pays one
dictionary look-up here.

- /healthz: the process is alive and answering; no I/O at all.
- /readyz: PostgreSQL, Redis and the broker each answer within READY_TIMEOUT_SECONDS;
  otherwise 503 with the ones that did not. Each engine is asked on a thread of its own that
  keeps its connection, so a poll every second costs three round trips, not three connects;
  an engine that hangs holds only its own thread, and its later polls fail fast.
  While the file named by READY_DRAIN_FILE exists (an operator's `touch`), 503
  `{"status": "draining"}` without asking the engines: the load balancer sends the process
  no new request, so it can be restarted without refusing one (docs/cluster.md).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import cache

import redis
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse

from infra import metrics

log = logging.getLogger(__name__)


def _postgres() -> None:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        connection.close()  # the next poll connects afresh (PostgreSQL may be back)
        raise


@cache
def _redis_client(url: str) -> redis.Redis:
    timeout = settings.READY_TIMEOUT_SECONDS
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def _redis() -> None:
    _redis_client(settings.REDIS_URL).ping()


def _broker() -> None:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        _redis_client(url).ping()
        return
    from celery import current_app as app  # noqa: PLC0415  (another transport: ask kombu)

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.READY_TIMEOUT_SECONDS)


CHECKS: dict[str, Callable[[], None]] = {
    "postgres": _postgres,
    "redis": _redis,
    "broker": _broker,
}


@cache
def _executor(name: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"readyz-{name}")


def readiness() -> dict[str, str]:
    """Each engine's answer: "ok", or why not (time-out or the error)."""
    futures: dict[str, Future[None]] = {
        name: _executor(name).submit(check) for name, check in CHECKS.items()
    }
    deadline = time.monotonic() + settings.READY_TIMEOUT_SECONDS
    found = {}
    for name, future in futures.items():
        try:
            future.result(timeout=max(0.0, deadline - time.monotonic()))
            found[name] = "ok"
        except FutureTimeout:
            future.cancel()  # a poll queued behind a hung one is not run late
            found[name] = f"no answer within {settings.READY_TIMEOUT_SECONDS} s"
        except Exception as exc:
            found[name] = f"{type(exc).__name__}: {exc}"[:200]
    return found


def _json(status: int, body: dict[str, object]) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


def healthz(request: HttpRequest) -> HttpResponse:
    return _json(200, {"status": "alive"})


# Read from the environment, not the settings, so that one host's processes can be given
# their own file (devtools/cluster.py). Empty: no drain switch.
DRAIN_FILE = os.environ.get("READY_DRAIN_FILE", "")


def draining() -> bool:
    """An operator asked this process to drain (one stat call per poll)."""
    return bool(DRAIN_FILE) and os.path.exists(DRAIN_FILE)


def readyz(request: HttpRequest) -> HttpResponse:
    if draining():
        return _json(503, {"status": "draining"})
    checks = readiness()
    failed = sorted(name for name, result in checks.items() if result != "ok")
    if failed:
        log.warning("not ready: %s", ", ".join(f"{n}: {checks[n]}" for n in failed))
        return _json(503, {"status": "unavailable", "failed": failed, "checks": checks})
    return _json(200, {"status": "ready", "checks": checks})


ROUTES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": metrics.metrics_view,
}


class OperationsMiddleware:
    """First in MIDDLEWARE: the probes and the scrape, answered before anything else runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        route = ROUTES.get(request.path_info)
        if route is not None and request.method in ("GET", "HEAD"):
            return route(request)
        return self.get_response(request)
