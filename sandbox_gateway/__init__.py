"""Sandbox payment gateway: an in-memory provider that speaks the payment gateway's API
(/v1/charges, /v1/refunds) as the settlement worker's gateway client calls it.

Run it with ``python -m sandbox_gateway`` or ``manage.py run_sandbox_gateway``.
The package imports no Django, so it starts in a fraction of a second and can run
beside the stack in tests and benchmarks.

What it does, in the order a request meets it:

1. Every route needs ``Authorization: Bearer <key>`` (401 otherwise).
2. ``/v1/`` routes take a token from a requests-per-second bucket (``quota_rps``,
   ``quota_burst``; 0 = unlimited). An empty bucket answers 429 with ``Retry-After``
   and records nothing.
3. POSTs need an ``Idempotency-Key`` and a valid JSON body (400 otherwise). A key
   names one request: the same key with another body (or on another endpoint) is
   a 422, the same key while its first request is still running is a 409, and a
   finished key replays its first 201 answer without charging again.
4. It sleeps ``latency_ms`` +/- ``latency_jitter_ms`` (asyncio, so any number of
   requests wait at once), then may answer 500/502/503 before doing anything
   (``error_rate``; the key is released, so a retry runs afresh).
5. It records the charge or refund, then may answer 500 instead of the result
   (``error_after_charge_rate``) or close the connection without an answer
   (``drop_rate``). The result stays stored under the key, so a retry with the
   same key, or ``GET /v1/charges?reference=``, tells the truth.

Control routes under ``/_sandbox/`` (same key, no quota, no faults) read and change
the fault settings, show the ledger and reset it.
"""

# The docstring above is also the --help text (app.main). The modules: ledger (the settings,
# the validated bodies and what is recorded; no HTTP), handlers (admission, the idempotent
# write path shared by charges and refunds, faults, control routes, middleware) and app
# (routes, serving, the command line).

from sandbox_gateway.app import (
    DEFAULT_HOST,
    DEFAULT_KEY,
    DEFAULT_PORT,
    add_arguments,
    build_app,
    config_from_options,
    main,
    run,
    serve,
)
from sandbox_gateway.handlers import SandboxGateway, TokenBucket
from sandbox_gateway.ledger import InvalidInputError, Ledger, SandboxConfig, config_update

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_KEY",
    "DEFAULT_PORT",
    "InvalidInputError",
    "Ledger",
    "SandboxConfig",
    "SandboxGateway",
    "TokenBucket",
    "add_arguments",
    "build_app",
    "config_from_options",
    "config_update",
    "main",
    "run",
    "serve",
]
