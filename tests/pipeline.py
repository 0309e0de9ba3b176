"""Helpers for pipeline tests: drive the real stack and read what it did."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from orders import services
from orders.models import TERMINAL, Order
from tests.waiting import wait_until


def wait_for(
    done: Callable[[], bool], *, timeout: float = 30.0, what: str = "the pipeline"
) -> None:
    """Poll until `done()`, running the periodic sweep as beat would (it finds lost work)."""

    def done_or_sweep() -> bool:
        if done():
            return True
        services.pipeline_sweep()
        return False

    wait_until(done_or_sweep, what=what, timeout=timeout, interval=0.3)


def all_terminal(order_ids: Iterable[int]) -> Callable[[], bool]:
    ids = list(order_ids)

    def check() -> bool:
        return not Order.objects.filter(pk__in=ids).exclude(status__in=TERMINAL).exists()

    return check


def ledger(gateway: httpx.Client) -> dict[str, list[dict[str, object]]]:
    response = gateway.get("/_sandbox/ledger")
    response.raise_for_status()
    return response.json()


def succeeded_charges_by_reference(gateway: httpx.Client) -> Counter[str]:
    return Counter(
        str(c["reference"]) for c in ledger(gateway)["charges"] if c["status"] == "succeeded"
    )


Delivery = tuple[dict[str, str], bytes]


class CallbackReceiver:
    """A chatbot's callback endpoint on a free local port: keeps every POST as received
    (headers, raw body) in `deliveries` and answers 204."""

    def __init__(self, path: str = "/hook") -> None:
        self.deliveries: list[Delivery] = []
        deliveries = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                deliveries.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def bodies(self) -> list[dict[str, object]]:
        """Every delivery's body, parsed."""
        return [json.loads(body) for _, body in list(self.deliveries)]

    def with_status(self, status: str) -> list[Delivery]:
        return [(h, b) for h, b in list(self.deliveries) if json.loads(b)["status"] == status]


@contextmanager
def callback_receiver(path: str = "/hook") -> Iterator[CallbackReceiver]:
    """A CallbackReceiver serving until the block ends."""
    receiver = CallbackReceiver(path)
    threading.Thread(target=receiver._server.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        receiver._server.shutdown()
        receiver._server.server_close()
