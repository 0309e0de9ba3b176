"""Settings shared by every environment. Everything reads the environment through one Env().

`local`, `test` and `production` only override what differs.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from infra.schema_text import API_DESCRIPTION

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

SECRET_KEY = env("SECRET_KEY", default=env("DJANGO_SECRET_KEY", default=""))
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=env.list("DJANGO_ALLOWED_HOSTS", default=[]))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "infra",
    "shop",
    "coupons",
    "orders",
]

MIDDLEWARE = [
    # First: /healthz, /readyz and /metrics, before host checks, redirects and sessions.
    "infra.health.OperationsMiddleware",
    # Then the request id and log context, then request metrics, so both see the whole answer.
    "infra.logs.RequestIdMiddleware",
    "infra.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Picks the language of error details from Accept-Language (English, Simplified Chinese).
    "infra.logs.ShopperLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it answers locked-out admin logins
]

# The admin login is protected against brute force: after AXES_FAILURE_LIMIT failures for a
# username from one address, that pair is locked out for AXES_COOLOFF_TIME.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

ROOT_URLCONF = "config.urls"
# No HTML redirect that drops a POST body: /api/v1/orders (no slash) is a JSON 404.
APPEND_SLASH = False
# Server-side: an admin message can carry a newly issued API key, never put it in a cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

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


DATABASES = {
    "default": database_settings(
        env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/campaign")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="cop"),
        "TIMEOUT": 300,
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
# The languages an error's `detail` is written in (chosen by Accept-Language; codes unchanged).
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Served by WhiteNoise from the apps' own folders: no collectstatic step to forget.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)

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
# Rows each campaign's coupon counter is split into (coupons.models.CouponSlice), so that
# concurrent claims do not queue on one row. Applies to campaigns created from now on.
COUPON_SLICES = env.int("COUPON_SLICES", default=16)

# How long intake remembers an order's Idempotency-Key in Redis, so that a replay takes no
# place in line (a replay after that is still found, by the INSERT's conflict).
IDEMPOTENCY_MARK_SECONDS = env.int("IDEMPOTENCY_MARK_SECONDS", default=300)

# A chatbot order is small; anything near this is hostile or broken (answered 413).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("API_MAX_BODY_BYTES", default=16 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["shop.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["infra.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_VERSIONING_CLASS": "infra.versioning.ApiVersioning",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "infra.api.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["shop.api.throttling.ChatbotAdmission"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    # The docs page's assets come from our own static files: no CDN on a closed network.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "TITLE": "Campaign order processor: chatbot API",
    "DESCRIPTION": API_DESCRIPTION,
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "APPEND_COMPONENTS": {
        "securitySchemes": {"ApiKey": {"type": "http", "scheme": "bearer"}},
    },
    "SECURITY": [{"ApiKey": []}],
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.models.Order.Status",
        "CouponStatusEnum": "coupons.models.Coupon.Status",
    },
}

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
# kombu's Redis transport, except that an unreadable message is dropped, not fatal.
CELERY_BROKER_TRANSPORT = env("CELERY_BROKER_TRANSPORT", default="infra.broker:Transport")
CELERY_TASK_IGNORE_RESULT = True  # results are read from our own tables
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True  # every task is idempotent; a crash redelivers
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # a SIGKILLed child's message is redelivered too
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=120)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=100)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Longer than any countdown we use (seconds, not minutes): long waits live in rows swept by beat.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    "socket_timeout": 2,
    "socket_connect_timeout": 1,
}
# A publish never stalls a request for long: the row is committed and the sweep finds it.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Task events for Flower (`celery -A config flower`): received/started/succeeded, three small
# publishes per task, and our tasks are coalesced nudges that drain for seconds, so a few a
# second. The "sent" event is off: it would add a publish to every nudge a web request sends.
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_TASK_EVENTS", default=True)
CELERY_TASK_SEND_SENT_EVENT = False
CELERY_TASK_DEFAULT_QUEUE = "maintenance"
CELERY_TASK_ROUTES = {
    "orders.reserve_orders": {"queue": "reservations"},
    "orders.settle_payments": {"queue": "payments"},
    "orders.deliver_callbacks": {"queue": "callbacks"},
    "orders.sweep": {"queue": "maintenance"},
}
# Celery's Django fixup closes the DB connection around every task unless told to reuse it.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
PIPELINE_SWEEP_SECONDS = env.float("PIPELINE_SWEEP_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULE = {
    "sweep-pipeline": {
        "task": "orders.sweep",
        "schedule": timedelta(seconds=PIPELINE_SWEEP_SECONDS),
    },
}
# Beat runs on every host and one of them schedules, under a lock in the broker's Redis
# (infra/beat.py). Another takes over within the lock's timeout of losing the holder; the
# waiting ones poll, and the holder extends the lock, every fifth of it.
CELERY_BEAT_SCHEDULER = "infra.beat:Scheduler"
CELERY_REDBEAT_LOCK_TIMEOUT = env.int("BEAT_LOCK_TIMEOUT_SECONDS", default=25)
CELERY_BEAT_MAX_LOOP_INTERVAL = max(CELERY_REDBEAT_LOCK_TIMEOUT / 5, 0.5)
CELERY_REDBEAT_KEY_PREFIX = env("BEAT_KEY_PREFIX", default="redbeat:")
# RedBeat's own client: the broker's time-outs, and a minute of retries before a call fails.
CELERY_REDBEAT_REDIS_OPTIONS = {
    "retry_period": 60,
    "socket_timeout": 2,
    "socket_connect_timeout": 1,
}

# --- The pipeline -------------------------------------------------------------------------
PAYMENT_GATEWAY_URL = env("PAYMENT_GATEWAY_URL", default="http://127.0.0.1:8765")
PAYMENT_GATEWAY_KEY = env("PAYMENT_GATEWAY_KEY", default="sandbox-key")
PAYMENT_GATEWAY_TIMEOUT = env.float("PAYMENT_GATEWAY_TIMEOUT", default=5.0)
PAYMENT_CONCURRENCY = env.int("PAYMENT_CONCURRENCY", default=32)
# After this many attempts without a definite answer a payment is parked (dead) for staff.
PAYMENT_MAX_ATTEMPTS = env.int("PAYMENT_MAX_ATTEMPTS", default=12)
PAYMENT_RETRY_BASE_SECONDS = env.float("PAYMENT_RETRY_BASE_SECONDS", default=1.0)
RESERVATION_BATCH_SIZE = env.int("RESERVATION_BATCH_SIZE", default=500)
SETTLEMENT_BATCH_SIZE = env.int("SETTLEMENT_BATCH_SIZE", default=200)
CALLBACK_BATCH_SIZE = env.int("CALLBACK_BATCH_SIZE", default=200)
# Group commit: after a batch smaller than its stage's batch size, a worker waits this long
# before taking the next, so that work trickling in is handled many items per transaction
# and per round of calls. Callbacks wait longest: a longer wait also lets one POST carry an
# order's latest state when several changes are pending (orders.services.callbacks).
# 0.1 s, measured (bench --e2e-rate 150, quick): against 0.05 s the reservation worker's CPU
# per order fell 1.19 -> 0.81 ms, payments' 1.72 -> 1.43, PostgreSQL's 2.07 -> 1.63, with
# accept-to-paid p99 0.71 -> 0.69 s; 0.15 s saved little more and p99 rose to 0.93 s.
RESERVATION_LINGER_SECONDS = env.float("RESERVATION_LINGER_SECONDS", default=0.1)
SETTLEMENT_LINGER_SECONDS = env.float("SETTLEMENT_LINGER_SECONDS", default=0.1)
CALLBACK_LINGER_SECONDS = env.float("CALLBACK_LINGER_SECONDS", default=0.2)
# A callback of a passing status (reserved) is due this long after the move, so that the
# order's next status, if it comes within that time, is the one POST
# (docs/integrator-guide.md, Callbacks: one callback carries the latest state; every
# terminal status is delivered, and at once).
CALLBACK_PASSING_DELAY_SECONDS = env.float("CALLBACK_PASSING_DELAY_SECONDS", default=1.0)
# How many processes may drain one line of work (a campaign's reservations, the payments, the
# callbacks) at once: one nudge mark per lane (orders.services.nudges). A worker whose batch
# came back full recruits the next free lane, so a backlog spreads over up to this many
# processes, on one host or several; a line that keeps up stays on one.
WORKER_LANES = env.int("WORKER_LANES", default=4)
# How long a worker keeps draining before it hands over to a fresh message (fairness, restarts).
WORKER_DRAIN_SECONDS = env.float("WORKER_DRAIN_SECONDS", default=10.0)
# How long a hold may wait for its payment, from the first payment attempt (a gateway that
# keeps refusing the charge); an order waiting in our own payment line is never expired.
HOLD_SECONDS = env.int("HOLD_SECONDS", default=15 * 60)
# A `pending` payment older than this lost its worker mid-call: its outcome is looked up.
# Long enough for a lookup and a charge to both time out.
PAYMENT_LEASE_SECONDS = env.float("PAYMENT_LEASE_SECONDS", default=PAYMENT_GATEWAY_TIMEOUT * 3 + 5)
# A non-terminal order nobody touched for this long is driven on by the sweep.
STALE_AFTER_SECONDS = env.int("STALE_AFTER_SECONDS", default=30)
CALLBACK_TIMEOUT = env.float("CALLBACK_TIMEOUT", default=5.0)
# A callback the chatbot did not acknowledge is retried with exponential backoff and jitter
# (orders.services.callbacks.retry_delays): the n-th retry waits CALLBACK_RETRY_BASE_SECONDS
# * 2**(n-1), at most CALLBACK_RETRY_MAX_DELAY_SECONDS, drawn between 3/4 of that and all
# of it. It is given up (failed, for staff to resend) once its retries' shortest waits add
# up to CALLBACK_RETRY_HOURS: a chatbot down for a day still hears every status
# (docs/integrator-guide.md, Callbacks).
# With the defaults that is 43 attempts over 24 to 32 hours; tests compress all three.
CALLBACK_RETRY_HOURS = env.float("CALLBACK_RETRY_HOURS", default=24.0)
CALLBACK_RETRY_BASE_SECONDS = env.float("CALLBACK_RETRY_BASE_SECONDS", default=2.0)
CALLBACK_RETRY_MAX_DELAY_SECONDS = env.float("CALLBACK_RETRY_MAX_DELAY_SECONDS", default=3600.0)
# A rotated webhook secret keeps signing beside the new one for this long (the admin's
# rotation; shop.services.webhook_secret_rotate), so the chatbot can switch without a gap.
WEBHOOK_SECRET_OVERLAP_HOURS = env.float("WEBHOOK_SECRET_OVERLAP_HOURS", default=24.0)
CALLBACK_ALLOW_HTTP = env.bool("CALLBACK_ALLOW_HTTP", default=False)
# Callback URLs naming localhost or a private, loopback or link-local address are refused
# (server-side request forgery), except where a developer's own receiver runs locally
# (production refuses it unless ALLOW_PRIVATE_CALLBACKS_IN_PRODUCTION).
CALLBACK_ALLOW_PRIVATE = env.bool("CALLBACK_ALLOW_PRIVATE", default=False)
# A receiver should refuse signatures older than this (replay window; see signature_verify).
CALLBACK_SIGNATURE_TOLERANCE = env.int("CALLBACK_SIGNATURE_TOLERANCE", default=300)
# A revoked key still stops working in every process within CACHE_VERSION_CHECK_SECONDS.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=30.0)
# Failed authentication per source address: a burst, then this many a second; past it, 429.
AUTH_FAILURE_RPS = env.float("AUTH_FAILURE_RPS", default=1.0)
AUTH_FAILURE_BURST = env.int("AUTH_FAILURE_BURST", default=20)
# A key that failed is answered from the process's memory for this long (no database lookup).
AUTH_NEGATIVE_CACHE_SECONDS = env.float("AUTH_NEGATIVE_CACHE_SECONDS", default=5.0)
# Behind a trusted proxy: the META key of the header it appends the client's address to
# (e.g. HTTP_X_FORWARDED_FOR; its last entry is used). Empty: REMOTE_ADDR.
CLIENT_ADDRESS_HEADER = env("CLIENT_ADDRESS_HEADER", default="")

# --- Rate limits and admission -------------------------------------------------------------
# Defaults per scope, (tokens per second or None for unlimited, burst); staff override them
# at run time in the admin (shop.RateLimit), read by every process within the cache time.
RATE_LIMIT_DEFAULTS = {
    "gateway": (env.float("GATEWAY_RPS", default=1000.0), env.int("GATEWAY_BURST", default=50)),
    # Sized for the story's peak of 833 orders/s: an order costs one POST (its terminal
    # status) when it is paid within CALLBACK_PASSING_DELAY_SECONDS, two (reserved, then
    # paid) when its payment takes longer, as it may at the peak: 1,666/s at most. The
    # burst lets two whole claimed batches (CALLBACK_BATCH_SIZE) go at once.
    "callbacks": (
        env.float("CALLBACK_RPS", default=2000.0),
        env.int("CALLBACK_BURST", default=400),
    ),
    "client_requests": (
        env.float("CLIENT_RPS", default=5000.0),
        env.int("CLIENT_BURST", default=1000),
    ),
    "customer_requests": (
        env.float("CUSTOMER_RPS", default=2.0),
        env.int("CUSTOMER_BURST", default=10),
    ),
}
RATE_LIMIT_CACHE_SECONDS = env.float("RATE_LIMIT_CACHE_SECONDS", default=5.0)
# Orders of one campaign not yet final (waiting, held or being charged) beyond which intake
# answers 429 at once.
BACKLOG_CEILING = env.int("BACKLOG_CEILING", default=200_000)
# The longest wait until final that intake promises: past it, at the line's measured drain,
# a new order is refused (429, Retry-After from the drain) rather than accepted to wait ever
# longer. Well inside HOLD_SECONDS, which anyway runs only from the first payment attempt.
LINE_MAX_WAIT_SECONDS = env.int("LINE_MAX_WAIT_SECONDS", default=300)

# --- Operations: metrics, health, logs (docs/operations-metrics.md) --------------------------
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


LOGGING = logging_settings(LOG_FORMAT, env("LOG_LEVEL", default="INFO"))
# Until a line has drained for a few seconds, waits are estimated at this rate (orders/s).
QUEUE_ASSUMED_DRAIN_RATE = env.float("QUEUE_ASSUMED_DRAIN_RATE", default=200.0)
