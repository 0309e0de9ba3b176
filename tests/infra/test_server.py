"""The web server as production runs it (gunicorn, config/gunicorn.conf.py, our worker class):
load beyond what it admits is answered 429 with Retry-After before Django sees it, and the
server's own refusals (request line, headers, body size) are the contract's JSON."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from orders.models import Order
from shop import services as shop_services
from tests import stack
from tests.factories.shop import ApiClientFactory, ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 40


@pytest.fixture
def web(worker_env: dict[str, str], log_dir: Path) -> Iterator[Callable[..., str]]:
    started = []

    def start(**env: str) -> str:
        url, process = stack.start_web(log_dir / "web.log", env={**worker_env, **env})
        started.append(process)
        return url

    yield start
    for process in started:
        stack.stop(process)


@pytest.fixture
def shop() -> tuple[str, str]:
    """An API key and a product with more stock than any test orders."""
    key = shop_services.api_key_issue(client_id=ApiClientFactory().pk).raw
    return key, ProductFactory(stock=10_000).sku


def order_body(sku: str, customer: str) -> dict[str, object]:
    return {"customer_id": customer, "items": [{"sku": sku, "quantity": 1}]}


def burst(url: str, key: str, sku: str, n: int = CLIENTS) -> list[httpx.Response]:
    """`n` shoppers send an order at the same moment, each on its own connection."""
    start = threading.Barrier(n)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def shopper(i: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            start.wait()
            answer = client.post(
                "/api/v1/orders/",
                json=order_body(sku, f"shopper-{i}"),
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex},
            )
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=shopper, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def assert_shed_cleanly(answers: list[httpx.Response], *, served_required: bool = True) -> None:
    statuses = sorted({a.status_code for a in answers})
    assert statuses == [202, 429] if served_required else statuses in ([202, 429], [429])
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.headers["Content-Type"] == "application/json"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"] == "overloaded"
        assert refused.json()["retry_after"] == int(refused.headers["Retry-After"])
        if "X-Request-ID" not in refused.headers:
            # The front door's own: its setting (WEB_SHED_RETRY_AFTER_SECONDS), no bucket.
            assert refused.headers["Retry-After"] == "1"
            assert "RateLimit" not in refused.headers
    # A refused order left nothing behind; every accepted one is stored.
    assert Order.objects.count() == sum(a.status_code == 202 for a in answers)


# One thread each time. "bound": at most two requests may wait for it, whatever their wait;
# the first arrivals are always admitted. "budget": any number may wait, but 1 ms at most; on
# a busy machine even the first may have waited that long, so all may be refused.
BOUND = {
    "WEB_MAX_WAITING": "2",
    "WEB_QUEUE_TIMEOUT_MS": "60000",
    "WEB_QUEUE_TIMEOUT_BUSY_MS": "60000",
    "WEB_QUEUE_TIMEOUT_SHEDDING_MS": "60000",
}
BUDGET = {
    "WEB_MAX_WAITING": "1000",
    "WEB_QUEUE_TIMEOUT_MS": "1",
    "WEB_QUEUE_TIMEOUT_BUSY_MS": "1",
    "WEB_QUEUE_TIMEOUT_SHEDDING_MS": "1",
}


@pytest.mark.parametrize(
    ("limits", "served_required"), [(BOUND, True), (BUDGET, False)], ids=["bound", "budget"]
)
def test_load_beyond_the_front_doors_limits_gets_429_and_the_admitted_are_served(
    web: Callable[..., str], shop: tuple[str, str], limits: dict[str, str], served_required: bool
) -> None:
    # given
    url = web(WEB_THREADS="1", **limits)
    # when: many more shoppers at once than it admits
    answers = burst(url, *shop)
    # then: every shopper answered; the excess refused cleanly, the rest accepted and stored
    assert len(answers) == CLIENTS
    assert_shed_cleanly(answers, served_required=served_required)


def test_only_the_api_is_shed(web: Callable[..., str]) -> None:
    # given: a server that sheds every API request that waits at all
    url = web(
        WEB_THREADS="1",
        WEB_MAX_WAITING="0",
        WEB_QUEUE_TIMEOUT_MS="0",
        WEB_QUEUE_TIMEOUT_BUSY_MS="0",
        WEB_QUEUE_TIMEOUT_SHEDDING_MS="0",
    )
    # when
    with httpx.Client(base_url=url, timeout=10) as client:
        api = client.get("/api/v1/campaigns/")
        admin = client.get("/admin/login/")
    # then: staff still reach the admin when shoppers are refused
    assert api.status_code == 429
    assert admin.status_code == 200


# --- The server's own refusals, in the contract's JSON ----------------------------------------


def raw_exchange(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (httpx would refuse some of these) and read the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def test_a_request_line_over_the_limit_is_a_json_400(web: Callable[..., str]) -> None:
    url = web()
    status, headers, body = raw_exchange(
        url, b"GET /api/v1/orders/" + b"9" * 5000 + b"/ HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert httpx.Response(400, content=body).json()["error"] == "invalid"


@pytest.mark.parametrize(
    ("key_length", "status", "error"),
    [(255, 202, None), (10_000, 431, "header_too_large")],
    ids=["longest-key-the-contract-allows", "header-over-the-limit"],
)
def test_the_idempotency_key_header_up_to_the_contract_and_beyond(
    web: Callable[..., str], shop: tuple[str, str], key_length: int, status: int, error: str | None
) -> None:
    url = web()
    key, sku = shop
    answer = httpx.post(
        f"{url}/api/v1/orders/",
        json=order_body(sku, "c-1"),
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "k" * key_length},
        timeout=10,
    )
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == "application/json"
    if error:
        assert answer.json()["error"] == error


@pytest.mark.parametrize("path", ["/api/v1/orders/", "/api/v1/campaigns/any/claims/"])
def test_a_5_mb_body_is_refused_before_it_is_read_and_the_client_sees_why(
    web: Callable[..., str], shop: tuple[str, str], path: str
) -> None:
    url = web()
    key, _ = shop
    answer = httpx.post(
        f"{url}{path}",
        content=b"{" + b" " * (5 * 1024 * 1024) + b"}",
        headers={
            "Authorization": f"Bearer {key}",
            "Idempotency-Key": "big",
            "Content-Type": "application/json",
        },
        timeout=10,
    )
    # then: an oversized body is `invalid` (400; docs/integrator-guide.md), answered with
    # the connection closed
    assert answer.status_code == 400
    assert answer.headers["Connection"] == "close"
    assert answer.json()["error"] == "invalid"
    assert "larger than" in answer.json()["fields"]["body"][0]
    assert Order.objects.count() == 0
