"""Production: every secret and address comes from the environment, with no default, and
what is only safe on a developer's machine refuses to start unless said out loud."""

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.base import (
    CALLBACK_ALLOW_PRIVATE,
    METRICS_ALLOWED_NETWORKS,
    METRICS_ENABLED,
    database_settings,
    env,
    logging_settings,
)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
DATABASES = {"default": database_settings(env.db("DATABASE_URL"))}
REDIS_URL = env("REDIS_URL")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
PAYMENT_GATEWAY_URL = env("PAYMENT_GATEWAY_URL")
PAYMENT_GATEWAY_KEY = env("PAYMENT_GATEWAY_KEY")
# One JSON object per line, for the log shipper.
LOGGING = logging_settings(env("LOG_FORMAT", default="json"), env("LOG_LEVEL", default="INFO"))

# `manage.py collectstatic` gathers the admin's and the API docs' assets here for WhiteNoise.
STATIC_ROOT = BASE_DIR / "staticfiles"  # noqa: F405
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=False)

SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True


def unsafe_settings(
    *,
    debug: bool,
    callback_allow_private: bool,
    metrics_enabled: bool,
    metrics_allowed_networks: list[str],
) -> list[str]:
    """A sentence for each development convenience left on that its override variable does
    not allow (docs/security.md, "Misconfiguration"). Each is one forgotten variable away
    from a leak: DEBUG answers tracebacks with settings in them, private callbacks let an API
    client make us call our own network, an open /metrics tells anyone our volumes."""
    refused = []
    if debug and not env.bool("ALLOW_DEBUG_IN_PRODUCTION", default=False):
        refused.append(
            "DEBUG is on: error pages would show tracebacks and settings to any caller. "
            "Turn it off, or set ALLOW_DEBUG_IN_PRODUCTION=true if that is really meant."
        )
    if callback_allow_private and not env.bool(
        "ALLOW_PRIVATE_CALLBACKS_IN_PRODUCTION", default=False
    ):
        refused.append(
            "CALLBACK_ALLOW_PRIVATE is on: API clients could have callbacks sent into our own "
            "network. Turn it off, or set ALLOW_PRIVATE_CALLBACKS_IN_PRODUCTION=true if that "
            "is really meant."
        )
    if (
        metrics_enabled
        and not metrics_allowed_networks
        and not env.bool("ALLOW_OPEN_METRICS_IN_PRODUCTION", default=False)
    ):
        refused.append(
            "/metrics answers every address: METRICS_ENABLED is on and METRICS_ALLOWED_NETWORKS "
            "is empty. List the scrapers' networks in METRICS_ALLOWED_NETWORKS, set "
            "METRICS_ENABLED=false, or set ALLOW_OPEN_METRICS_IN_PRODUCTION=true if a proxy "
            "already keeps /metrics private."
        )
    return refused


_refused = unsafe_settings(
    debug=DEBUG,
    callback_allow_private=CALLBACK_ALLOW_PRIVATE,
    metrics_enabled=METRICS_ENABLED,
    metrics_allowed_networks=METRICS_ALLOWED_NETWORKS,
)
if _refused:
    raise ImproperlyConfigured("Production settings refuse to start. " + " ".join(_refused))
