"""A developer's machine: DEBUG on, safe throwaway defaults."""

from config.settings.base import *  # noqa: F403
from config.settings.base import env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="local-dev-only-not-secret")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CALLBACK_ALLOW_HTTP = env.bool("CALLBACK_ALLOW_HTTP", default=True)
CALLBACK_ALLOW_PRIVATE = env.bool("CALLBACK_ALLOW_PRIVATE", default=True)
