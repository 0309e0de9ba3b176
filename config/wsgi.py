"""WSGI entry point for gunicorn: `gunicorn config.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

# A deployment that forgets DJANGO_SETTINGS_MODULE gets production's settings, which refuse to
# start without their secrets, never local's DEBUG and private callbacks (docs/security.md).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
# A web request never waits long for a row lock: behind a stuck batch it answers 429 (see
# DB_LOCK_TIMEOUT_MS in settings). Workers keep waiting; their task time limits bound them.
# Behind PgBouncer (DB_POOLER) the web's database alias sets it instead (docs/pgbouncer.md).
os.environ.setdefault("DB_LOCK_TIMEOUT_MS", "2000")
# No `SELECT 1` before each request's first query (pg_stat_statements: one per order): a
# connection PostgreSQL dropped fails one request, answered 429, and is then replaced.
os.environ.setdefault("DB_CONN_HEALTH_CHECKS", "false")

application = get_wsgi_application()
