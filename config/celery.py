"""The Celery app: `celery -A config worker -Q reservations` finds it here."""

import os
import time
from typing import Any

from celery import Celery
from celery.signals import before_task_publish

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
