"""The Celery app: `celery -A config worker -Q reservations` finds it here."""

import os

from celery import Celery

from infra import celery_signals  # noqa: F401  (its receivers: publish stamps, log context, metrics)

# Production's settings unless told otherwise, as for gunicorn (config/wsgi.py); manage.py
# keeps local's for a developer's commands.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
