"""Settings for the benchmark's stack: the project's base settings (the code paths
production runs) plus the floor app, whose bare endpoints and no-op task are the in-run
baselines. Addresses and limits come from the environment that bench/stack.py sets.

`config.settings.production` is not used because it forces HTTPS redirects and secure
cookies, which a plain-HTTP load test on 127.0.0.1 cannot follow; everything that matters
for speed (DEBUG off, persistent connections, the same middleware, DRF settings and Celery
options) is identical in base.
"""

from config.settings.base import *  # noqa: F403
from config.settings.base import CELERY_TASK_ROUTES, INSTALLED_APPS, env

DEBUG = False
SECRET_KEY = env("SECRET_KEY", default="bench-only-not-secret")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
INSTALLED_APPS = [*INSTALLED_APPS, "bench.floor"]
ROOT_URLCONF = "bench.urls"
CELERY_TASK_ROUTES = {**CELERY_TASK_ROUTES, "bench.noop": {"queue": "bench"}}
