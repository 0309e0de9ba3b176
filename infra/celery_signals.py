"""What every Celery process of ours does around its tasks: a publish time and the request id
on each message, database connections checked before a task, log context per task, and the
worker node's /metrics. Connected when config/celery.py imports this module; nothing here
touches Django until a signal fires."""

import logging
import time
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun, worker_init


@before_task_publish.connect
def _stamp_publish_time(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Messages carry no publish time of their own; the backlog page reads this one to show
    how old the oldest message of each queue is."""
    if headers is not None:
        headers.setdefault("published_at", time.time())
        from infra.logs import current_request_id  # noqa: PLC0415

        rid = current_request_id()
        if rid:  # published while a request was handled: say which one
            headers.setdefault("request_id", rid)


@task_prerun.connect
def _drop_broken_database_connections(**_: Any) -> None:
    """What Django does before every web request. Workers keep their connections across tasks
    (CELERY_DB_REUSE_MAX), so one that PostgreSQL dropped (a restart, pg_terminate_backend, a
    failover) would otherwise fail every task until it happened to be recycled; this closes
    it, and CONN_HEALTH_CHECKS has the next query check a reused one first."""
    from django.db import close_old_connections  # noqa: PLC0415  (Django is set up by then)

    close_old_connections()


@task_prerun.connect
def _log_context(task: Any = None, task_id: str | None = None, **_: Any) -> None:
    """Every log line of the task names it and the request whose commit sent the nudge."""
    from infra import logs  # noqa: PLC0415

    nudged_by = getattr(task.request, "request_id", None) if task is not None else None
    logs.context.set({"task": getattr(task, "name", ""), "task_id": task_id or ""})
    if nudged_by:
        logs.context_set(nudged_by=nudged_by)


@task_postrun.connect
def _log_context_clear(**_: Any) -> None:
    from infra import logs  # noqa: PLC0415

    logs.context.set(None)


@worker_init.connect
def _serve_metrics(**_: Any) -> None:
    """WORKER_METRICS_PORT: this worker node serves /metrics for its whole pool (the pool
    processes write to PROMETHEUS_MULTIPROC_DIR, this main process reads and sums them)."""
    from django.conf import settings  # noqa: PLC0415

    port = settings.WORKER_METRICS_PORT
    if not port:
        return
    from prometheus_client import start_http_server  # noqa: PLC0415

    from infra.metrics import multiprocess, registry  # noqa: PLC0415

    log = logging.getLogger(__name__)
    if not multiprocess():
        log.warning(
            "WORKER_METRICS_PORT without PROMETHEUS_MULTIPROC_DIR: the pool processes' "
            "metrics cannot be read from here; only this process's are served"
        )
    try:
        start_http_server(port, addr=settings.WORKER_METRICS_ADDR, registry=registry())
    except OSError:
        log.exception("metrics not served: port %s is not free", port)
        return
    log.info("serving metrics on %s:%s", settings.WORKER_METRICS_ADDR, port)
