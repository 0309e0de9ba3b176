"""Settings of the order pipeline: intake's line and admission, the payment gateway, the
workers' batches and lanes, holds, and callbacks. Read from the environment here and gathered
by config/settings/base.py; code reads them from django.conf.settings."""

import environ

env = environ.Env()

# How long intake remembers an order's Idempotency-Key in Redis, so that a replay takes no
# place in line (a replay after that is still found, by the INSERT's conflict).
IDEMPOTENCY_MARK_SECONDS = env.int("IDEMPOTENCY_MARK_SECONDS", default=300)

PAYMENT_GATEWAY_URL = env("PAYMENT_GATEWAY_URL", default="http://127.0.0.1:8765")
PAYMENT_GATEWAY_KEY = env("PAYMENT_GATEWAY_KEY", default="sandbox-key")
# Test orders (placed with a test key, docs/integrator-guide.md, Test mode) are charged here
# and never at PAYMENT_GATEWAY_URL: the sandbox (run_sandbox_gateway) unless set.
PAYMENT_TEST_GATEWAY_URL = env("PAYMENT_TEST_GATEWAY_URL", default="http://127.0.0.1:8765")
PAYMENT_TEST_GATEWAY_KEY = env("PAYMENT_TEST_GATEWAY_KEY", default="sandbox-key")
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
CALLBACK_ALLOW_HTTP = env.bool("CALLBACK_ALLOW_HTTP", default=False)
# Callback URLs naming localhost or a private, loopback or link-local address are refused
# (server-side request forgery), except where a developer's own receiver runs locally
# (production refuses it unless ALLOW_PRIVATE_CALLBACKS_IN_PRODUCTION).
CALLBACK_ALLOW_PRIVATE = env.bool("CALLBACK_ALLOW_PRIVATE", default=False)
# A receiver should refuse signatures older than this (replay window; see signature_verify).
CALLBACK_SIGNATURE_TOLERANCE = env.int("CALLBACK_SIGNATURE_TOLERANCE", default=300)

# Orders of one campaign not yet final (waiting, held or being charged) beyond which intake
# answers 429 at once.
BACKLOG_CEILING = env.int("BACKLOG_CEILING", default=200_000)
# The longest wait until final that intake promises: past it, at the line's measured drain,
# a new order is refused (429, Retry-After from the drain) rather than accepted to wait ever
# longer. Well inside HOLD_SECONDS, which anyway runs only from the first payment attempt.
LINE_MAX_WAIT_SECONDS = env.int("LINE_MAX_WAIT_SECONDS", default=300)
# Until a line has drained for a few seconds, waits are estimated at this rate (orders/s).
QUEUE_ASSUMED_DRAIN_RATE = env.float("QUEUE_ASSUMED_DRAIN_RATE", default=200.0)
