"""The Celery app: `celery -A config worker -Q reservations` finds it here."""

import os
import time
from typing import Any

from celery import Celery
from celery.signals import before_task_publish, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@before_task_publish.connect
def _stamp_publish_time(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Messages carry no publish time of their own; the backlog page reads this one to show
    how old the oldest message of each queue is."""
    if headers is not None:
        headers.setdefault("published_at", time.time())


@task_prerun.connect
def _drop_broken_database_connections(**_: Any) -> None:
    """What Django does before every web request. Workers keep their connections across tasks
    (CELERY_DB_REUSE_MAX), so one that PostgreSQL dropped (a restart, pg_terminate_backend, a
    failover) would otherwise fail every task until it happened to be recycled; this closes
    it, and CONN_HEALTH_CHECKS has the next query check a reused one first."""
    from django.db import close_old_connections  # noqa: PLC0415  (Django is set up by then)

    close_old_connections()
