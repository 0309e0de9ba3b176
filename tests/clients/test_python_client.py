"""The chatbot client package (clients/python) against the real stack: gunicorn serving the
API, a real Celery worker on every queue and the sandbox gateway. Claims, orders polled
until paid, a replayed key, the cancel path, errors mapped to the package's exceptions, and a
callback delivered by the worker, verified with verify_webhook, also while the webhook
secret is rotated (docs/integrator-guide.md, the whole of it)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from campaign_client import (
    CampaignClient,
    Conflict,
    IdempotencyKeyReused,
    InvalidRequest,
    NotFound,
    Unauthorized,
    WebhookVerificationError,
    verify_webhook,
)

from orders.models import TERMINAL, Order, Payment
from orders.services.settlement import gateway as gateway_client
from shop import services as shop_services
from shop.models import ApiClient, RateLimit
from tests import stack
from tests.factories.coupons import CampaignFactory
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.pipeline import CallbackReceiver, callback_receiver, wait_for

CLIENT_README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"

pytestmark = [
    pytest.mark.pipeline,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker"),
]


@pytest.fixture(scope="module")
def web(worker_env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """gunicorn on the tests' database, as production serves the API; its base URL."""
    base, process = stack.start_web(log_dir / "gunicorn-client.log", env=worker_env)
    yield base
    stack.stop(process)


@pytest.fixture(autouse=True)
def _orders_final_before_the_flush() -> Iterator[None]:
    """Let the module's worker finish what a test left in flight before the database is
    emptied: the flush's TRUNCATE racing a worker's batch deadlocked under load."""
    yield
    wait_for(
        lambda: not Order.objects.exclude(status__in=TERMINAL).exists(),
        what="the test's orders to be final",
    )


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with callback_receiver("/hooks/orders") as receiver:
        yield receiver


def bot(web: str, chatbot: ApiClient) -> CampaignClient:
    raw = shop_services.api_key_issue(client_id=chatbot.pk).raw
    return CampaignClient(web, raw, timeout=5)


def heard(
    receiver: CallbackReceiver, order_id: str, status: str
) -> list[tuple[dict[str, str], bytes]]:
    return [(h, b) for h, b in receiver.with_status(status) if json.loads(b)["id"] == order_id]


def test_claim_order_poll_until_paid_replay_and_a_verified_callback(
    web: str, gateway: httpx.Client, receiver: CallbackReceiver
) -> None:
    # given
    chatbot = ApiClientFactory()
    campaign = CampaignFactory(budget_total=100_000)
    tea = ProductFactory(price=1800, stock=10)
    with bot(web, chatbot) as client:
        # when: a coupon claimed twice with one key, an order placed twice with one key
        coupon = client.claim_coupon(campaign.slug, "c-42", idempotency_key="claim-c-42")
        again = client.claim_coupon(campaign.slug, "c-42", idempotency_key="claim-c-42")
        key = str(uuid.uuid4())
        placed = client.place_order(
            "c-42", [(tea.sku, 2)], coupon_code=coupon.code, callback_url=receiver.url,
            idempotency_key=key,
        )  # fmt: skip
        replay = client.place_order(
            "c-42", [(tea.sku, 2)], coupon_code=coupon.code, callback_url=receiver.url,
            idempotency_key=key,
        )  # fmt: skip
        paid = client.wait_for_order(placed.id, timeout=20, min_interval=0.2)
        listed = client.list_orders(customer_id="c-42")
        coupons = client.list_coupons("c-42")
        figures = client.get_campaign(campaign.slug)

    # then: one coupon, one order, its place in line at 202, paid
    assert (again.code, again.status) == (coupon.code, "issued")
    assert (placed.status, placed.replayed, placed.queue_position >= 1) == ("received", False, True)
    assert (replay.id, replay.replayed) == (placed.id, True)
    assert (paid.status, paid.reason, paid.queue_position, paid.estimated_wait_seconds) == (
        "paid",
        None,
        0,
        0,
    )
    assert (paid.subtotal, paid.discount, paid.payable) == (3600, 2500, 1100)
    assert [o.id for o in listed.results] == [placed.id]
    assert [c.status for c in coupons] == ["redeemed"]
    assert figures.coupons_remaining == campaign.coupons_total - 1
    # and the worker's signed callback passes verify_webhook with the client's secret only
    wait_for(lambda: heard(receiver, placed.id, "paid"), timeout=15, what="the paid callback")
    headers, body = heard(receiver, placed.id, "paid")[0]
    event = verify_webhook(body, headers, chatbot.webhook_secret)
    assert (event.order.id, event.order.status) == (placed.id, "paid")
    assert event.event_id.startswith("evt_")
    assert event.delivery_id
    assert event.event_time is not None
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, "not-the-secret")
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body.replace(b"paid", b"PAID"), headers, chatbot.webhook_secret)


def test_a_callback_during_a_secret_rotation_verifies_with_either_secret(
    web: str, gateway: httpx.Client, receiver: CallbackReceiver
) -> None:
    # given: the operators rotated the secret, the old one still signing for an hour
    chatbot = ApiClientFactory()
    old = chatbot.webhook_secret
    new = shop_services.webhook_secret_rotate(
        client_id=chatbot.pk, overlap=timedelta(hours=1), actor="staff:test"
    ).webhook_secret
    tea = ProductFactory(price=1800)
    with bot(web, chatbot) as client:
        # when
        placed = client.place_order("c-7", [(tea.sku, 1)], callback_url=receiver.url)
        wait_for(lambda: heard(receiver, placed.id, "paid"), timeout=20, what="the paid callback")
    # then: two v1 entries; a receiver holding either secret, or both, accepts it
    headers, body = heard(receiver, placed.id, "paid")[0]
    assert headers["X-Signature"].count("v1=") == 2
    for secrets in (old, new, [old, new]):
        assert verify_webhook(body, headers, secrets).order.id == placed.id


def test_the_cancel_path(web: str, gateway: httpx.Client) -> None:
    # given: the gateway's quota used up, so the order waits for its charge ("retry later")
    gateway.post("/_sandbox/config", json={"quota_rps": 0.01, "quota_burst": 1}).raise_for_status()
    gateway_client().charge(
        idempotency_key="use-the-token", amount=1, currency="CNY", reference="x", customer="x"
    )
    tea = ProductFactory(price=3000, stock=5)
    with bot(web, ApiClientFactory()) as client:
        placed = client.place_order("c-1", [(tea.sku, 1)])
        wait_for(
            lambda: Payment.objects.filter(order__public_id=placed.id, status="retry").exists(),
            what="the charge to be refused for quota",
        )
        # when
        cancelled = client.cancel_order(placed.id)
        again = client.cancel_order(placed.id)
        gateway.post("/_sandbox/reset", json={"config": True}).raise_for_status()
        free = client.place_order("c-2", [(tea.sku, 1)])
        paid = client.wait_for_order(free.id, timeout=20, min_interval=0.2)
        with pytest.raises(Conflict) as refused:
            client.cancel_order(paid.id)
    # then
    assert (cancelled.status, cancelled.queue_position) == ("cancelled", 0)
    assert again.status == "cancelled"
    assert paid.status == "paid"
    assert (refused.value.status, refused.value.error) == (409, "not_cancellable")


def test_a_429_from_the_service_is_waited_out_and_retried_with_the_same_key(
    web: str, gateway: httpx.Client
) -> None:
    # given: one claim or order a second per shopper, no burst (in force in every process
    # within RATE_LIMIT_CACHE_SECONDS)
    shop_services.rate_limit_set(
        scope=RateLimit.Scope.CUSTOMER_REQUESTS, per_second=1, burst=1, actor="staff:test"
    )
    time.sleep(0.5)
    tea = ProductFactory(price=1800)
    with bot(web, ApiClientFactory()) as client:
        first = client.place_order("c-5", [(tea.sku, 1)])
        # when: a second order at once is refused 429 with Retry-After, and retried
        started = time.monotonic()
        second = client.place_order("c-5", [(tea.sku, 2)])
        waited = time.monotonic() - started
    # then: it waited at least the second asked, and made one order, not two
    assert waited >= 1
    assert (second.replayed, second.items[0].quantity) == (False, 2)
    assert Order.objects.filter(customer_id="c-5").count() == 2
    assert first.id != second.id


def test_errors_are_mapped_to_the_packages_exceptions(web: str) -> None:
    # given
    chatbot = ApiClientFactory()
    campaign = CampaignFactory(per_customer_limit=1)
    tea = ProductFactory(price=1800)
    with bot(web, chatbot) as client, CampaignClient(web, "cop_wrong", timeout=5) as stranger:
        # when / then: a missing order, campaign and path segment
        with pytest.raises(NotFound) as missing:
            client.get_order(str(uuid.uuid4()))
        assert (missing.value.status, missing.value.error) == (404, "not_found")
        assert missing.value.request_id
        with pytest.raises(NotFound):
            client.claim_coupon("no-such-campaign", "c-1")
        # an unknown SKU: 400 invalid, with the field named
        with pytest.raises(InvalidRequest) as invalid:
            client.place_order("c-1", [("NO-SUCH-SKU", 1)])
        assert (invalid.value.status, invalid.value.error) == (400, "invalid")
        assert "items" in invalid.value.fields
        with pytest.raises(InvalidRequest):
            client.place_order("not a customer id!", [(tea.sku, 1)])
        # a key reused with another body
        client.place_order("c-1", [(tea.sku, 1)], idempotency_key="k-1")
        with pytest.raises(IdempotencyKeyReused) as reused:
            client.place_order("c-1", [(tea.sku, 2)], idempotency_key="k-1")
        assert (reused.value.status, reused.value.error) == (422, "idempotency_key_reused")
        # the shopper's limit
        client.claim_coupon(campaign.slug, "c-1")
        with pytest.raises(Conflict) as limit:
            client.claim_coupon(campaign.slug, "c-1")
        assert limit.value.error == "limit_reached"
        # a wrong key
        with pytest.raises(Unauthorized) as unauthorized:
            stranger.list_campaigns()
        assert (unauthorized.value.status, unauthorized.value.error) == (401, "unauthorized")


def test_the_readme_quick_start_works_as_written(
    web: str, gateway: httpx.Client, receiver: CallbackReceiver
) -> None:
    # given: the demo's campaign and product, and the quick start with this stack's address,
    # key, callback URL and secret in place of its placeholders
    chatbot = ApiClientFactory()
    CampaignFactory(slug="spring-free-order")
    ProductFactory(sku="TM-MILKTEA-L", price=1800)
    readme = CLIENT_README.read_text("utf-8")
    quick_start = readme.split("```python\n", 1)[1].split("```\n", 1)[0]
    for placeholder, value in (
        ("http://127.0.0.1:8000", web),
        ("cop_...", shop_services.api_key_issue(client_id=chatbot.pk).raw),
        ("https://bot.example.com/hooks/orders", receiver.url),
        ("whsec-...", chatbot.webhook_secret),
    ):
        assert placeholder in quick_start
        quick_start = quick_start.replace(placeholder, value)
    scope: dict[str, object] = {}
    exec(compile(quick_start, "clients/python/README.md", "exec"), scope)  # noqa: S102
    # when
    said = scope["free_milk_tea"]("c-99")
    wait_for(lambda: any(b'"paid"' in body for _, body in receiver.deliveries), what="a callback")
    headers, body = next((h, b) for h, b in receiver.deliveries if b'"paid"' in b)
    scope["on_callback"](body, headers)
    # then
    assert said.strip() == "paid"
    scope["api"].close()
