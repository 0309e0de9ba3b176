"""Operators' view of the real stack: a real gunicorn (two sync workers) and a real Celery
worker (a prefork pool of two), each with its own PROMETHEUS_MULTIPROC_DIR, take a small burst
of orders through to paid. Their /metrics move as the orders move, added up across the
processes of each; one order's request id is found in the web's and the worker's log lines."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from orders.models import Order
from shop import services as shop_services
from tests import stack
from tests.factories.coupons import CampaignFactory
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.pipeline import all_terminal, wait_for

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

BURST = 12
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(url: str) -> dict[str, float]:
    """The text format as {"name{labels}": value}, labels as exposed (sorted by the client)."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    samples = {}
    for line in response.text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def moved(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


@pytest.fixture
def web(
    worker_env: dict[str, str], sandbox: httpx.Client, log_dir: Path, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """gunicorn with JSON logs at INFO, its metrics summed over its workers; (URL, log)."""
    multiproc = tmp_path / "prometheus-web"
    multiproc.mkdir()
    log_path = log_dir / "ops-gunicorn.log"
    log_path.unlink(missing_ok=True)
    env = {
        **worker_env,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        # The burst below must be served, not shed: on a slow machine (embedded engines) four
        # simultaneous shoppers on two threads per process can wait past the front door's
        # budget. Shedding has its own tests (tests/infra/test_server.py).
        "WEB_QUEUE_TIMEOUT_MS": "5000",
        "WEB_QUEUE_TIMEOUT_BUSY_MS": "5000",
        "WEB_QUEUE_TIMEOUT_SHEDDING_MS": "5000",
    }
    url, process = stack.start_web(log_path, env=env, workers=2)
    yield url, log_path
    stack.stop(process)


@pytest.fixture
def pipeline_worker(
    start_worker: Callable[..., object], tmp_path: Path, log_dir: Path
) -> tuple[str, Path]:
    """A worker node on every queue serving its pool's metrics; (metrics URL, log)."""
    multiproc = tmp_path / "prometheus-worker"
    multiproc.mkdir()
    port = stack.free_port()
    start_worker(
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
        WORKER_METRICS_PORT=str(port),
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
    )
    return f"http://127.0.0.1:{port}/metrics", log_dir / "own-workers.log"


def test_metrics_move_with_a_burst_and_one_request_id_is_followed(
    web: tuple[str, Path], pipeline_worker: tuple[str, Path], gateway: httpx.Client
) -> None:
    # given
    base, web_log = web
    worker_metrics, worker_log = pipeline_worker
    client = ApiClientFactory()
    key = shop_services.api_key_issue(client_id=client.pk).raw
    campaign = CampaignFactory(coupons_total=100, budget_total=10_000_000)
    tea = ProductFactory(price=3000, stock=100)  # more than the coupon covers: a charge
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=15)
    web_before = scrape(f"{base}/metrics")
    worker_before = scrape(worker_metrics)
    traced = f"trace-{uuid.uuid4().hex[:12]}"

    def place(i: int) -> dict:
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        if i == 0:
            headers["X-Request-ID"] = traced
        coupon = http.post(
            f"/api/v1/campaigns/{campaign.slug}/claims/",
            json={"customer_id": f"c-{i}"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert coupon.status_code == 201, coupon.text
        response = http.post(
            "/api/v1/orders/",
            json={
                "customer_id": f"c-{i}",
                "items": [{"sku": tea.sku, "quantity": 1}],
                "coupon_code": coupon.json()["code"],
            },
            headers=headers,
        )
        assert response.status_code == 202, response.text
        if i == 0:
            assert response.headers["X-Request-ID"] == traced
        else:
            assert re.fullmatch(r"[0-9a-f]{24}", response.headers["X-Request-ID"])
        return response.json()

    # when: a burst from 4 threads, and a refusal for a product nobody can have
    with ThreadPoolExecutor(4) as pool:
        placed = list(pool.map(place, range(BURST)))
    gone = ProductFactory(stock=0)
    refused = http.post(
        "/api/v1/orders/",
        json={"customer_id": "c-x", "items": [{"sku": gone.sku, "quantity": 1}]},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    mid_burst = scrape(worker_metrics)  # the worker is at it: whatever it shows is summed
    ids = list(Order.objects.filter(public_id__in=[p["id"] for p in placed]).values_list("pk"))
    wait_for(all_terminal(pk for (pk,) in ids), what="the burst", timeout=60)
    assert set(Order.objects.filter(pk__in=[pk for (pk,) in ids]).values_list("status")) == {
        ("paid",)
    }

    # then: the web's counters, summed over both gunicorn workers
    web_after = scrape(f"{base}/metrics")
    orders_202 = 'http_requests_total{endpoint="v1:order-list",method="POST",status="202"}'
    claims_201 = 'http_requests_total{endpoint="v1:coupon-claim",method="POST",status="201"}'
    assert moved(web_before, web_after, orders_202) == BURST
    assert moved(web_before, web_after, claims_201) == BURST
    assert refused.status_code == 410
    assert moved(web_before, web_after, 'api_refusals_total{cause="",code="sold_out"}') == 1
    latency = 'http_request_duration_seconds_count{endpoint="v1:order-list"}'
    assert moved(web_before, web_after, latency) == BURST + 1
    # the state read at scrape time
    slug = campaign.slug
    assert web_after[f'campaign_coupons_remaining{{campaign="{slug}"}}'] == 100 - BURST
    assert web_after[f'campaign_budget_remaining_fen{{campaign="{slug}"}}'] == (
        10_000_000 - BURST * min(3000, campaign.max_discount)
    )
    assert web_after[f'orders_waiting{{campaign="{slug}"}}'] == 0
    assert 'celery_queue_messages{queue="reservations"}' in web_after
    # and the worker's, summed over its pool processes
    assert_worker_counted(worker_before, mid_burst, scrape(worker_metrics))
    # and the traced order is followed by its request id
    assert_followed(traced, placed[0]["id"], web_log, worker_log)


def assert_followed(traced: str, order_id: str, web_log: Path, worker_log: Path) -> None:
    """One grep of the request id finds the web's line for the POST and each worker batch
    line that moved the order, all JSON; the order row keeps the id."""
    web_lines = [json.loads(x) for x in web_log.read_text().splitlines() if traced in x]
    assert any(x.get("order") == order_id and x.get("status") == 202 for x in web_lines), web_lines
    assert all(x["request_id"] == traced for x in web_lines)
    worker_lines = [
        line
        for line in (json.loads(x) for x in worker_log.read_text().splitlines() if traced in x)
        if traced in line.get("request_ids", ())  # not the task lines it merely nudged
    ]
    statuses = set()
    for line in worker_lines:
        pairs = dict(zip(line["request_ids"], line["orders"], strict=True))
        assert pairs[traced] == order_id
        statuses.add(line["order_status"])
    assert statuses == {"reserved", "paid"}, worker_lines
    assert Order.objects.get(public_id=order_id).request_id == traced


def assert_worker_counted(
    before: dict[str, float], mid_burst: dict[str, float], after: dict[str, float]
) -> None:
    worker_before, worker_after = before, after
    reserved = 'orders_transitions_total{source="received",target="reserved"}'
    paid = 'orders_transitions_total{source="reserved",target="paid"}'
    assert moved(worker_before, worker_after, reserved) == BURST
    assert moved(worker_before, worker_after, paid) == BURST
    assert moved(worker_before, mid_burst, reserved) <= moved(worker_before, worker_after, reserved)
    assert moved(worker_before, worker_after, "orders_accept_to_paid_seconds_count") == BURST
    assert moved(worker_before, worker_after, 'gateway_calls_total{outcome="succeeded"}') == BURST
    assert moved(worker_before, worker_after, 'pipeline_batch_size_sum{stage="reserve"}') == BURST
    assert moved(worker_before, worker_after, 'pipeline_batch_size_sum{stage="settle"}') == BURST
