"""Production: every secret and address comes from the environment, with no default."""

from config.settings.base import *  # noqa: F403
from config.settings.base import database_settings, env, logging_settings

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
