"""Settings of the ground every app stands on: the database connection, the web worker's front
door, the per-process copies, metrics, health and logs. Read from the environment here and
gathered by config/settings/base.py; code reads them from django.conf.settings."""

import environ
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

# How long a statement may wait for a row lock before it fails (0 = for ever). The web server
# sets 2 s (config/wsgi.py): a request stuck behind a slow batch's locks answers 429 with
# Retry-After (infra/api.py) instead of holding one of the few sync workers for as long.
# Sent at connect (`-c lock_timeout`); behind a transaction pooler the pooler sets it instead.
DB_LOCK_TIMEOUT_MS = env.int("DB_LOCK_TIMEOUT_MS", default=0)
DB_POOLER = env("DB_POOLER", default="")


# The connection pooler between the processes and PostgreSQL: "" (none: each process keeps
# its own connections) or "pgbouncer-transaction" (PgBouncer in transaction pooling, where each
# transaction may run on another server connection, shared with other processes). The latter
# implies everything such a pooler needs (docs/pgbouncer.md): no prepared statements (unless
# DB_PREPARED_STATEMENTS=true, for PgBouncer 1.22+ with max_prepared_statements), no
# server-side cursors, and no session settings sent at connect: DB_LOCK_TIMEOUT_MS is then
# the pooler's to set (connect_query on the web's database alias), and each new connection
# checks that it was (infra.sql.session_settings_check).
DB_POOLERS = ("", "pgbouncer-transaction")


def database_settings(url_config: dict) -> dict:
    """DATABASES["default"] from a parsed DATABASE_URL: persistent connections (without them
    the intake path's throughput halves), checked before reuse, lock timeout."""
    pooler = env("DB_POOLER", default="")
    if pooler not in DB_POOLERS:
        raise ImproperlyConfigured(f"DB_POOLER={pooler!r}: one of {DB_POOLERS}")
    url_config["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=600)
    # A health check is a `SELECT 1` round trip before the first query of every request;
    # the web turns it off (config/wsgi.py): a connection PostgreSQL dropped fails one request
    # with 429 (infra.api) and is replaced, which costs less than a ping on every order.
    url_config["CONN_HEALTH_CHECKS"] = env.bool("DB_CONN_HEALTH_CHECKS", default=True)
    # Django's .iterator() outside a transaction declares a WITH HOLD cursor, which lives in
    # the server session: behind a transaction pooler the next FETCH may reach another one.
    url_config["DISABLE_SERVER_SIDE_CURSORS"] = bool(pooler)
    # Server-side binding: parameters travel apart from the SQL text (psycopg's own Cursor)
    # instead of being quoted into it in Python, and a statement text a connection has run 5
    # times is prepared there: PostgreSQL stops parsing and planning the workers' and the
    # API's repeated ORM statements. Off behind a transaction pooler (DB_POOLER), or with
    # DB_PREPARED_STATEMENTS=false: psycopg then prepares nothing, not even
    # infra.sql.prepared_rows' statements, and never sends DEALLOCATE ALL after a rollback.
    # Unnamed statements (server-side binding) last one round trip and need no session.
    # DB_SERVER_SIDE_BINDING=false goes back to Django's default client-side binding.
    options = url_config.setdefault("OPTIONS", {})
    if env.bool("DB_PREPARED_STATEMENTS", default=not pooler):
        options["prepare_threshold"] = 5  # psycopg's default
    if env.bool("DB_SERVER_SIDE_BINDING", default=True):
        options["server_side_binding"] = True
    lock_timeout_ms = env.int("DB_LOCK_TIMEOUT_MS", default=0)
    if lock_timeout_ms and not pooler:
        options["options"] = f"{options.get('options', '')} -c lock_timeout={lock_timeout_ms}"
    return url_config


# The web worker's front door (infra/server.py): an API request that waited in a worker's
# queue longer than WEB_QUEUE_TIMEOUT_MS, or WEB_QUEUE_TIMEOUT_BUSY_MS once the queue has not
# been empty for WEB_QUEUE_INTERVAL_MS (WEB_QUEUE_TIMEOUT_SHEDDING_MS while over
# WEB_SHED_HEAVY_SHARE of the last second's requests were refused), or that finds
# WEB_MAX_WAITING already waiting, is answered 429 with Retry-After before Django sees it.
WEB_QUEUE_TIMEOUT_MS = env.int("WEB_QUEUE_TIMEOUT_MS", default=200)
WEB_QUEUE_TIMEOUT_BUSY_MS = env.int("WEB_QUEUE_TIMEOUT_BUSY_MS", default=100)
WEB_QUEUE_TIMEOUT_SHEDDING_MS = env.int("WEB_QUEUE_TIMEOUT_SHEDDING_MS", default=50)
WEB_SHED_HEAVY_SHARE = env.float("WEB_SHED_HEAVY_SHARE", default=0.25)
WEB_QUEUE_INTERVAL_MS = env.int("WEB_QUEUE_INTERVAL_MS", default=100)
WEB_MAX_WAITING = env.int("WEB_MAX_WAITING", default=32)
WEB_SHED_RETRY_AFTER_SECONDS = env.int("WEB_SHED_RETRY_AFTER_SECONDS", default=1)
# Requests a kept-alive connection carries before the web worker closes it (infra/server.py,
# as nginx's keepalive_requests); its client reconnects, to whichever process accepts first,
# so that a pool's connections spread over the processes. 0: no limit.
WEB_KEEPALIVE_REQUESTS = env.int("WEB_KEEPALIVE_REQUESTS", default=100)
# Each web worker freezes the objects of the loaded application (infra/server.py), so that
# Python's full garbage collections skip them: about 6 % of the web tier's CPU under load
# (docs/performance.md). Off only to compare.
WEB_GC_FREEZE = env.bool("WEB_GC_FREEZE", default=True)

# How old the intake path's per-process copies of products and campaign terms may be
# (infra/memo.py): this bounds only the counters every hold moves (stock, budget held), which
# the workers check again under locks; staff's changes reach the copies within
# CACHE_VERSION_CHECK_SECONDS.
INTAKE_CACHE_SECONDS = env.float("INTAKE_CACHE_SECONDS", default=1.0)
# A change staff make (a pause or resume, a campaign's terms, a price, a revoked key) reaches
# every process within this: each process re-reads one version in Redis at most this often
# (infra/memo.py), one GET however many requests it serves.
CACHE_VERSION_CHECK_SECONDS = env.float("CACHE_VERSION_CHECK_SECONDS", default=0.15)
# How long a change keeps trying to publish its new version while Redis refuses it; a process
# that has not read the version for longer than this trusts none of its copies again.
CACHE_VERSION_PUBLISH_SECONDS = env.float("CACHE_VERSION_PUBLISH_SECONDS", default=2.0)

# /metrics on the web process; 404 when off, or when the peer is outside the networks listed
# (empty: anyone who reaches the port; production refuses that unless
# ALLOW_OPEN_METRICS_IN_PRODUCTION says the proxy's own rules close the path).
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=[])
# Whether a web scrape also reads the state gauges (queues, lines, campaigns): a few indexed
# counts and one broker round trip per scrape. Off on all but one web host of a fleet.
METRICS_SCRAPE_STATE = env.bool("METRICS_SCRAPE_STATE", default=True)
# A Celery worker serves its pool's metrics on this port (0: none). One port per worker node.
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=0)
WORKER_METRICS_ADDR = env("WORKER_METRICS_ADDR", default="127.0.0.1")
# /readyz: how long each of PostgreSQL, Redis and the broker may take to answer.
READY_TIMEOUT_SECONDS = env.float("READY_TIMEOUT_SECONDS", default=0.5)
# One line per answered request (request id, client, route, status, order, duration).
LOG_REQUESTS = env.bool("LOG_REQUESTS", default=True)
# "json": one JSON object per line (production); "plain": readable lines (make run).
LOG_FORMAT = env("LOG_FORMAT", default="plain")


def logging_settings(log_format: str, level: str) -> dict:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "infra.logs.ContextFilter"}},
        "formatters": {
            "plain": {"()": "infra.logs.PlainFormatter"},
            "json": {"()": "infra.logs.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "httpx": {"level": "WARNING"},  # one INFO line per gateway call drowns the rest
        },
    }
