"""Settings shared by every environment: Django, DRF, the schema and Celery, wired here; each
app's own settings (the pipeline's, the rate limits, the web worker's...) are read from the
environment in its conf.py and gathered below. `local`, `test` and `production` only override
what differs. docs/configuration.md lists every variable.
"""

from datetime import timedelta
from pathlib import Path

import environ

# Each app's own settings, read from the environment beside the code that uses them.
from coupons.conf import *  # noqa: F403
from infra.conf import *  # noqa: F403
from infra.conf import LOG_FORMAT, database_settings, logging_settings
from infra.schema_text import API_DESCRIPTION
from orders.conf import *  # noqa: F403
from shop.conf import *  # noqa: F403

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
    "backoffice",
]

MIDDLEWARE = [
    # First: /healthz, /readyz and /metrics, before host checks, redirects and sessions.
    "infra.health.OperationsMiddleware",
    # Then the request id and log context, then request metrics, so both see the whole answer.
    "infra.logs.RequestIdMiddleware",
    "infra.metrics.RequestMetricsMiddleware",
    # RateLimit-Policy and RateLimit on answers to requests that took rate-limit tokens.
    "infra.ratelimit.RateLimitHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files, sessions, the staff user and messages are the admin's: the *OutsideApi
    # classes are Django's and WhiteNoise's middleware, skipped for /api/ (infra/middleware.py).
    "infra.middleware.WhiteNoiseOutsideApi",
    "infra.middleware.SessionOutsideApi",
    # Picks the language of error details from Accept-Language (English, Simplified Chinese).
    "infra.logs.ShopperLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",  # named: the deploy check looks for it
    "infra.middleware.AuthenticationOutsideApi",
    "infra.middleware.MessageOutsideApi",
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
    # The API's version, semver: the same as pyproject.toml's and CHANGELOG.md's latest release
    # (docs/compatibility.md, "Versions"; tests/infra/test_schema_file.py checks all three).
    "VERSION": "1.2.0",
    "OAS_VERSION": "3.1.0",
    # 3.1 for `webhooks`: the callback, its headers and body (orders/api/webhooks.py).
    "WEBHOOKS": ["orders.api.webhooks.ORDER_STATUS_CHANGED"],
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


LOGGING = logging_settings(LOG_FORMAT, env("LOG_LEVEL", default="INFO"))
