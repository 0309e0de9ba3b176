"""gunicorn's settings for the API: `gunicorn config.wsgi -c config/gunicorn.conf.py -b ADDR`.

The worker class is ours (infra.server.ApiWorker: gunicorn's threaded worker with load
shedding and JSON answers for the server's own errors). The process and thread counts were
chosen by measurement on a 2-core machine (docs/performance.md): one process per core, and
two threads per process, enough to overlap the waits on PostgreSQL and Redis; with four, the
main thread that accepts and refuses connections got too little of the GIL under a 5x
overload (a quick run: p99 of every answer 9.1 s with four threads, 5.4 s with two, at the
same CPU per paid order).
"""

import os

worker_class = "infra.server.ApiWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "2"))
# Connections a worker holds open at once (waiting, being served, kept alive); past this it
# stops accepting and the kernel's listen queue holds the rest.
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "1000"))
backlog = int(os.environ.get("WEB_BACKLOG", "2048"))
keepalive = 5

# How often a thread holding the GIL is asked to let another run (Python's default: 5 ms).
# A request thread back from PostgreSQL or Redis, and the main thread that accepts and
# refuses, wait up to this long for the GIL; at 1 ms the quick benchmark's intake saturation
# went from 58 to 92 orders/s and p99 at 100/s from 267 to 127 ms (bench/results/INDEX.md, the
# worker-choice/ runs of 2026-11-29).
switch_interval = float(os.environ.get("WEB_SWITCH_INTERVAL_MS", "1")) / 1000


def post_worker_init(worker):  # gunicorn calls it with the worker
    import sys  # noqa: PLC0415

    sys.setswitchinterval(switch_interval)
