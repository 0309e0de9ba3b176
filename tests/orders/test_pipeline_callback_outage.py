"""A chatbot's endpoint down for a long outage (the retry schedule compressed by settings to
seconds) loses nothing: through a real worker process, every final status arrives once it
is back, in order for each order, each POST naming its event, its attempt and when the
change happened (docs/integrator-guide.md, Callbacks)."""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest

from orders.models import CallbackDelivery, Order
from orders.services import order_refund, signature_verify
from orders.services.callbacks import rfc3339
from tests.factories.orders import place
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.pipeline import all_terminal, wait_for

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

# Each paid status refused this often before the endpoint comes back: more than the eight
# attempts a callback once had in all.
REFUSALS = 10


class _Chatbot(BaseHTTPRequestHandler):
    """Answers 503 while `down`, else 204; remembers every POST and what it answered."""

    heard: ClassVar[list[tuple[dict[str, str], bytes, int]]] = []
    down = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = 503 if self.down else 204
        self.heard.append((dict(self.headers), body, status))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_every_final_status_arrives_in_order_after_a_long_outage(
    gateway: httpx.Client, start_worker
) -> None:
    # given: a worker whose retries come every fraction of a second, for three minutes
    start_worker(
        CALLBACK_RETRY_BASE_SECONDS="0.05",
        CALLBACK_RETRY_MAX_DELAY_SECONDS="0.5",
        CALLBACK_RETRY_HOURS="0.05",
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Chatbot)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Chatbot.heard, _Chatbot.down = [], True
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    chatbot = ApiClientFactory()
    tea = ProductFactory(price=1800, stock=10)
    # when: orders are paid, and two of them refunded, while the endpoint is down
    orders = [place(chatbot, f"c-{i}", [(tea, 1)], callback_url=url) for i in range(5)]
    wait_for(all_terminal([o.pk for o in orders]), what="the orders paid")
    assert set(
        Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("status", flat=True)
    ) == {"paid"}
    refunded = orders[:2]
    for order in refunded:
        order_refund(order_id=order.pk, actor="staff:test")
    paid_events = {
        f"evt_{pk}"
        for pk in CallbackDelivery.objects.filter(order_status="paid").values_list("pk", flat=True)
    }

    def refused_enough() -> bool:
        refused = Counter(h["X-Event-Id"] for h, _, status in list(_Chatbot.heard) if status == 503)
        return all(refused[event] >= REFUSALS for event in paid_events)

    wait_for(refused_enough, what=f"each paid status refused {REFUSALS} times")
    # and then it comes back
    _Chatbot.down = False
    deliveries = CallbackDelivery.objects.filter(order__in=orders)

    def all_delivered() -> bool:
        return not deliveries.filter(state__in=["pending", "failed"]).exists()

    wait_for(all_delivered, what="every callback delivered", timeout=60)
    server.shutdown()
    # then: each order's final status arrived, its terminal statuses in the order they
    # happened; a passing status, if one arrived, before them
    accepted = [(h, body) for h, body, status in _Chatbot.heard if status == 204]
    by_order: dict[str, list[str]] = defaultdict(list)
    for _, body in accepted:
        document = json.loads(body)
        by_order[document["id"]].append(document["status"])
    for order in orders:
        want = ["paid", "refunded"] if order in refunded else ["paid"]
        got = by_order[str(order.public_id)]
        assert [s for s in got if s != "reserved"] == want, got
        assert got[: got.count("reserved")] == ["reserved"] * got.count("reserved")
    # and every POST, refused or accepted, names its event (the same on every retry), its own
    # attempt, and the move's time, and is signed
    rows = {f"evt_{d.pk}": d for d in deliveries}
    for headers, body, _ in _Chatbot.heard:
        delivery = rows[headers["X-Event-Id"]]
        assert json.loads(body)["status"] == delivery.order_status
        assert headers["X-Event-Time"] == rfc3339(moment=delivery.created_at)
        assert signature_verify(
            secret=chatbot.webhook_secret, body=body, header=headers["X-Signature"]
        )
    attempts = [h["X-Delivery-Id"] for h, _, _ in _Chatbot.heard]
    assert len(set(attempts)) == len(attempts)
    # and the retries are on record: each paid status tried more often than it was refused
    for delivery in deliveries.filter(order_status="paid"):
        assert delivery.state == "delivered"
        assert delivery.attempts > REFUSALS
