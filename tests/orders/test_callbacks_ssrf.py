"""Callbacks check where they connect, at the moment they connect: a name that resolved to a
public address when the order was taken and to an internal one when the callback is sent
(DNS rebinding) is never called. The receiver is a real HTTP server on 127.0.0.1; only the
DNS answer for one made-up name is replaced, for the whole process."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from orders.models import CallbackDelivery, Order
from orders.netguard import address_is_public
from orders.services.callbacks import CallbackJob, callback_send
from orders.tasks import deliver_callbacks_task, reserve_orders_task
from tests.factories.shop import ProductFactory


class _Receiver(BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Receiver.received.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[int]:
    """An internal service on 127.0.0.1 that an attacker would like us to call."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


REBOUND = "hooks.rebind.test"
_real_getaddrinfo = socket.getaddrinfo


def dns(*addresses: str) -> mock._patch:  # type: ignore[type-arg]
    """The resolver answers `addresses` for REBOUND (every other name as usual), for any
    client in this process: an unguarded one would connect there too."""

    def getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> list:
        if host != REBOUND:
            return _real_getaddrinfo(host, port, *args, **kwargs)  # type: ignore[arg-type]
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, int(port), 0, 0))  # type: ignore[call-overload]
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, int(port)))  # type: ignore[call-overload]
            for a in addresses
        ]

    return mock.patch("socket.getaddrinfo", getaddrinfo)


def job(url: str) -> CallbackJob:
    return CallbackJob(
        delivery_id=1,
        client_id=1,
        attempt=1,
        url=url,
        body=b'{"id":"o-1"}',
        secret="s",
        event_time=timezone.now(),
    )


@override_settings(CALLBACK_ALLOW_PRIVATE=False)
@pytest.mark.parametrize(
    "addresses",
    [
        ("127.0.0.1",),
        ("10.1.2.3",),
        ("169.254.169.254",),
        ("::1",),
        ("::ffff:127.0.0.1",),
        ("93.184.216.34", "127.0.0.1"),  # one public answer does not launder a private one
    ],
)
def test_a_name_resolving_to_an_internal_address_is_not_called(
    receiver: int, addresses: tuple[str, ...]
) -> None:
    # given: a name that now resolves to our own network
    with dns(*addresses):
        # when
        error = callback_send(job(f"http://{REBOUND}:{receiver}/hook"))
    # then
    assert "not a public address" in error
    assert _Receiver.received == []


@override_settings(CALLBACK_ALLOW_PRIVATE=False)
def test_an_internal_ip_literal_is_refused_at_delivery_too(receiver: int) -> None:
    # given: a URL stored while private addresses were allowed
    # when
    error = callback_send(job(f"http://127.0.0.1:{receiver}/hook"))
    # then
    assert "not a public address" in error
    assert _Receiver.received == []


@override_settings(CALLBACK_ALLOW_PRIVATE=True)
def test_with_private_addresses_allowed_the_same_receiver_is_called(receiver: int) -> None:
    # given / when: the development setting (the receiver really answers)
    error = callback_send(job(f"http://127.0.0.1:{receiver}/hook"))
    # then
    assert error == ""
    assert _Receiver.received == ["/hook"]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("0.0.0.0", False),  # noqa: S104 (an address judged, not bound)
        ("100.64.0.1", False),
        ("fe80::1%eth0", False),
        ("::ffff:10.0.0.1", False),
        ("fec0::1", False),  # site-local: deprecated, still routed inside some networks
        ("224.0.0.1", False),
        ("not-an-address", False),
    ],
)
def test_what_counts_as_a_public_address(address: str, public: bool) -> None:
    assert address_is_public(address) is public


# Teredo: 2001:0:<server IPv4>:<flags>:<port, inverted>:<client IPv4, every bit inverted>.
@pytest.mark.parametrize(
    ("form", "address", "public"),
    [
        ("mapped", "::ffff:127.0.0.1", False),
        ("mapped", "::ffff:169.254.169.254", False),
        ("mapped", "::ffff:93.184.216.34", True),
        ("compatible", "::127.0.0.1", False),
        ("compatible", "::7f00:1", False),
        ("compatible", "::10.0.0.1", False),
        ("compatible", "::93.184.216.34", True),
        ("translated", "::ffff:0:7f00:1", False),
        ("translated", "::ffff:0:93.184.216.34", True),
        ("nat64", "64:ff9b::127.0.0.1", False),
        ("nat64", "64:ff9b::a9fe:a9fe", False),  # 169.254.169.254, the metadata service
        ("nat64", "64:ff9b::93.184.216.34", True),
        ("nat64 local-use", "64:ff9b:1::a00:1", False),
        ("nat64 local-use", "64:ff9b:1:5db8:d8:2200::", False),  # 93.184.216.34: never public
        ("6to4", "2002:7f00:1::1", False),
        ("6to4", "2002:c0a8:0001::1", False),  # 192.168.0.1
        ("6to4", "2002:5db8:d822::1", True),  # 93.184.216.34
        ("teredo", "2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # client 127.0.0.1
        ("teredo", "2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # client 10.0.0.1
        ("teredo", "2001:0:a00:1:8000:63bf:a247:27dd", False),  # server 10.0.0.1
        ("teredo", "2001:0:4136:e378:8000:63bf:a247:27dd", True),  # client 93.184.216.34
    ],
)
def test_an_ipv6_address_carrying_an_ipv4_one_is_judged_as_what_it_carries(
    form: str, address: str, public: bool
) -> None:
    assert address_is_public(address) is public, form


@pytest.mark.django_db
def test_an_orders_callback_to_a_rebound_name_is_never_sent_and_says_why(
    api: APIClient, receiver: int
) -> None:
    # given: an order accepted with a callback to a name (names are not resolved at intake)
    tea = ProductFactory(stock=5)
    url = f"http://{REBOUND}:{receiver}/orders"
    with override_settings(CALLBACK_ALLOW_PRIVATE=False, CALLBACK_PASSING_DELAY_SECONDS=0):
        placed = api.post(
            "/api/v1/orders/",
            {"customer_id": "c-1", "items": [{"sku": tea.sku, "quantity": 1}], "callback_url": url},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k-1",
        )
        assert placed.status_code == 202
        reserve_orders_task(Order.objects.get().campaign_id)
        # when: by the time the callback goes out, the name points at our own network
        with dns("127.0.0.1"):
            deliver_callbacks_task()
    # then
    delivery = CallbackDelivery.objects.get()
    assert delivery.state == CallbackDelivery.State.PENDING  # retried later, then failed
    assert "not a public address" in delivery.last_error
    assert _Receiver.received == []
