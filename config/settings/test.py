"""Tests: the machine's real PostgreSQL and Redis; Redis DB 14 carries Celery, DB 15 the rest.

The two are apart so that the per-test flush of DB 15 never wipes the broker's queue
bindings under a running worker.
"""

import os
import socket

from config.settings.base import *  # noqa: F403
from config.settings.base import LOG_FORMAT, env, logging_settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


DEBUG = False
SECRET_KEY = "test-only-not-secret"  # noqa: S105
ALLOWED_HOSTS = ["*"]
REDIS_URL = env("TEST_REDIS_URL", default="redis://127.0.0.1:6379/15")
CELERY_BROKER_URL = env("TEST_CELERY_BROKER_URL", default="redis://127.0.0.1:6379/14")
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = "test"  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CALLBACK_ALLOW_HTTP = True
CALLBACK_ALLOW_PRIVATE = True  # the tests' receivers listen on 127.0.0.1
AXES_ENABLED = False  # on in the tests that prove the lockout
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=0.0)
# A test that changes a product or campaign past the services sees it at once; the web
# processes a test starts may be given production's copies.
INTAKE_CACHE_SECONDS = env.float("INTAKE_CACHE_SECONDS", default=0.0)
# WhiteNoise looks a static file up when it is asked for, instead of listing every app's
# static files (the admin's, the API docs' bundles: about 500) each time its middleware is
# built, which a test client does on its first request: that listing was a sixth of a second
# per test client. Served the same way, from the same finders (WHITENOISE_USE_FINDERS).
WHITENOISE_AUTOREFRESH = True
LOGGING = logging_settings(LOG_FORMAT, env("LOG_LEVEL", default="WARNING"))

# Short clocks so that recovery paths (lost nudges, dead workers, expired holds) run in
# seconds. The worker processes started by the tests read these same settings.
STALE_AFTER_SECONDS = env.int("STALE_AFTER_SECONDS", default=2)
PAYMENT_GATEWAY_TIMEOUT = env.float("PAYMENT_GATEWAY_TIMEOUT", default=2.0)
PAYMENT_LEASE_SECONDS = env.float("PAYMENT_LEASE_SECONDS", default=4.0)
HOLD_SECONDS = env.int("HOLD_SECONDS", default=600)
WORKER_DRAIN_SECONDS = env.float("WORKER_DRAIN_SECONDS", default=3.0)
# The sandbox gateway the tests start: a free port of this run's own unless given, put in the
# environment so that the workers the tests start (which read these settings) name the same
# one. A fixed port was shared by two runs on one machine, and the first to end stopped the
# other's sandbox under it.
PAYMENT_GATEWAY_URL = os.environ.setdefault(
    "PAYMENT_GATEWAY_URL", f"http://127.0.0.1:{_free_port()}"
)
PAYMENT_GATEWAY_KEY = "test-sandbox-key"
# A second sandbox, with a key of its own, stands for the test gateway: the tests prove a test
# order is charged there and never at PAYMENT_GATEWAY_URL (tests/conftest.py `test_sandbox`).
PAYMENT_TEST_GATEWAY_URL = env("PAYMENT_TEST_GATEWAY_URL", default="http://127.0.0.1:18766")
PAYMENT_TEST_GATEWAY_KEY = "test-mode-sandbox-key"
# Unlimited unless a test sets a limit (shop.services.rate_limit_set), and re-read quickly so
# worker processes see a test's change.
RATE_LIMIT_DEFAULTS = {
    "gateway": (None, 1),
    "callbacks": (None, 1),
    "client_requests": (None, 1),
    "customer_requests": (None, 1),
}
RATE_LIMIT_CACHE_SECONDS = 0.2
PAYMENT_MAX_ATTEMPTS = env.int("PAYMENT_MAX_ATTEMPTS", default=4)
PAYMENT_RETRY_BASE_SECONDS = env.float("PAYMENT_RETRY_BASE_SECONDS", default=0.05)
