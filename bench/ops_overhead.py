"""What the operations layer adds to every request, in CPU: the probes' dispatch, the request
id and its log line, the request metrics (prometheus-client in multiprocess mode, as in
production) and the language choice. A microbenchmark in one process, no I/O but the log
line's write to /dev/null:

    .venv/bin/python -m bench.ops_overhead

Each middleware wraps a view that answers at once, so the numbers are the middleware's own.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import timeit

# Multiprocess mode must be chosen before prometheus_client is first imported.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ops-overhead-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

import django

django.setup()

from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import RequestFactory  # noqa: E402
from django.urls import resolve  # noqa: E402

from infra.health import OperationsMiddleware  # noqa: E402
from infra.logs import (  # noqa: E402
    ContextFilter,
    JsonFormatter,
    RequestIdMiddleware,
    ShopperLanguageMiddleware,
)
from infra.metrics import RequestMetricsMiddleware  # noqa: E402

ROUNDS = 20_000
PATH = "/api/v1/orders/"


def view(request: HttpRequest) -> HttpResponse:
    request.resolver_match = MATCH
    return HttpResponse(b"{}", status=202, content_type="application/json")


MATCH = resolve(PATH)


def per_request_us(handler: object, request: HttpRequest) -> float:
    best = min(timeit.repeat(lambda: handler(request), number=ROUNDS, repeat=5))  # type: ignore[operator]
    return best / ROUNDS * 1e6


def main() -> int:
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    requests_log = logging.getLogger("requests")
    requests_log.handlers, requests_log.propagate = [handler], False

    request = RequestFactory().post(PATH, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    base = per_request_us(view, request)
    rows = [
        ("probes' dispatch (OperationsMiddleware)", OperationsMiddleware(view)),
        ("request metrics (counter + histogram)", RequestMetricsMiddleware(view)),
        ("language, Accept-Language: zh-CN", ShopperLanguageMiddleware(view)),
    ]
    requests_log.setLevel(logging.WARNING)
    rows.append(("request id, no log line", RequestIdMiddleware(view)))
    costs = [(name, per_request_us(mw, request) - base) for name, mw in rows]
    requests_log.setLevel(logging.INFO)
    logged = per_request_us(RequestIdMiddleware(view), request) - base
    costs.append(("request id + JSON log line", logged))
    english = RequestFactory().post(PATH, HTTP_ACCEPT_LANGUAGE="en-US")
    plain = per_request_us(ShopperLanguageMiddleware(view), english) - base
    costs.append(("language, Accept-Language: en-US", plain))
    chain = OperationsMiddleware(
        RequestIdMiddleware(RequestMetricsMiddleware(ShopperLanguageMiddleware(view)))
    )
    costs.append(("all of them, log line on, zh-CN", per_request_us(chain, request) - base))
    costs.append(("all of them, log line on, en-US", per_request_us(chain, english) - base))

    print(f"per request, best of 5 x {ROUNDS:,} (microseconds of CPU over a bare view):")
    for name, cost in costs:
        print(f"  {name:<42} {cost:7.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
