"""Prometheus metrics: the web side (requests, refusals) and the exposition at /metrics.

prometheus-client directly, in its multiprocess mode: with PROMETHEUS_MULTIPROC_DIR set
before the first import of prometheus_client, every process (each gunicorn worker, each
Celery pool process) writes its counters and histograms to its own memory-mapped files in
that directory, and a scrape sums them. On the hot path a metric is an in-memory update of a
mapped page: no system call, no network, no database.

The pipeline's own metrics (transitions, batches, gateway, callbacks, parked work) are in
orders/metrics.py; the gauges read at scrape time (queues, lines, budgets) are collected
there too, only when a scrape asks for them.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by route name (never the raw path), method and status.",
    ["endpoint", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time from the first middleware to the response, by route name.",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
REFUSALS = Counter(
    "api_refusals_total",
    "Requests refused with an error code a shopper can be told about: the code (sold_out, "
    "out_of_stock, budget_exhausted, ...) and, for 429 overloaded, the cause.",
    ["code", "cause"],
)

# Children of labelled metrics, cached: `.labels()` takes a lock and builds a key each call.
_children: dict[tuple[object, ...], object] = {}


def _child(metric: Counter | Histogram, *labels: str) -> object:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def request_observe(endpoint: str, method: str, status: int, seconds: float) -> None:
    _child(REQUESTS, endpoint, method, str(status)).inc()  # type: ignore[attr-defined]
    _child(REQUEST_SECONDS, endpoint).observe(seconds)  # type: ignore[attr-defined]


def refusal(code: str, cause: str = "") -> None:
    """Count one refusal. Anything that answers a refusal outside DRF's exception handler (a
    shedding layer answering 429 before the view) calls this with its cause."""
    _child(REFUSALS, code, cause).inc()  # type: ignore[attr-defined]


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def registry() -> CollectorRegistry:
    """What a scrape reads: every process's files in multiprocess mode, else this process."""
    if not multiprocess():
        return REGISTRY
    reg = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(reg)
    return reg


# --- /metrics -------------------------------------------------------------------------------

# Collectors that read state at scrape time (queues, lines, budgets); orders registers its own.
_scrape_collectors: list[Callable[[], object]] = []


def scrape_collector(factory: Callable[[], object]) -> None:
    _scrape_collectors.append(factory)


@cache
def _allowed() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in settings.METRICS_ALLOWED_NETWORKS)


def metrics_allowed(request: HttpRequest) -> bool:
    """METRICS_ENABLED, and the peer (REMOTE_ADDR: the proxy's, not a header a client can
    forge) inside METRICS_ALLOWED_NETWORKS (empty: anyone who reaches the port)."""
    if not settings.METRICS_ENABLED:
        return False
    networks = _allowed()
    if not networks:
        return True
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in networks)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format: every process's counters and histograms, plus the gauges
    read now from the database, Redis and the broker (METRICS_SCRAPE_STATE)."""
    if not metrics_allowed(request):
        return HttpResponse(status=404)
    reg = registry()
    if settings.METRICS_SCRAPE_STATE:
        for factory in _scrape_collectors:
            reg = _with(reg, factory())
    return HttpResponse(generate_latest(reg), content_type=CONTENT_TYPE_LATEST)


def _with(reg: CollectorRegistry, collector: object) -> CollectorRegistry:
    if reg is REGISTRY:  # never add a per-scrape collector to the process-wide registry
        copy = CollectorRegistry()
        copy.register(_Everything(REGISTRY))  # type: ignore[arg-type]
        reg = copy
    reg.register(collector)  # type: ignore[arg-type]
    return reg


class _Everything:
    """A registry seen as one collector, so a scrape-local registry can include it."""

    def __init__(self, inner: CollectorRegistry) -> None:
        self.inner = inner

    def collect(self) -> object:
        return self.inner.collect()


# --- The middleware -------------------------------------------------------------------------


# Anything else a client invents would be a new series each: one bucket for all of them.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetricsMiddleware:
    """Counts every answer by route name and status, and its latency. Placed first, so that
    it times the whole stack. Route names, not paths: /orders/<id>/ is one series."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        endpoint = (match.view_name or match.route) if match is not None else "unmatched"
        method = request.method if request.method in _METHODS else "other"
        request_observe(endpoint, method, response.status_code, time.perf_counter() - start)
        return response
