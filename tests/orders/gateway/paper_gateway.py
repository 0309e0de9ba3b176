"""A payment gateway written from docs/gateway-protocol.md alone, as a provider would, served
by the standard library in a thread: proof that the page is enough to build one, and a
gateway that can be given flaws, to prove that `manage.py gateway_check` catches them."""

from __future__ import annotations

import json
import re
import secrets
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

# The flaws a test may give it, each breaking one promise of the protocol.
FLAWS: Final = frozenset({"replay_charges_again", "any_key_accepted", "over_refund_allowed"})
CUSTOMER: Final = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
Answer = tuple[int, dict[str, Any]]


def _error(status: int, code: str, detail: str) -> Answer:
    return status, {"error": code, "detail": detail}


def _is_amount(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _text(value: object, longest: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= longest


class PaperGateway:
    """The ledger and the rules; `serve` puts it on a port."""

    def __init__(self, *, key: str, flaws: frozenset[str] = frozenset()) -> None:
        assert flaws <= FLAWS, flaws
        self.key, self.flaws = key, flaws
        self.lock = threading.Lock()
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunded: dict[str, int] = {}
        self.keys: dict[str, tuple[str, Answer | None]] = {}  # key -> (request, its 201)

    def authorized(self, header: str | None) -> bool:
        return "any_key_accepted" in self.flaws or header == f"Bearer {self.key}"

    def lookup(self, reference: str) -> Answer:
        if not reference:
            return _error(400, "invalid", "reference is required.")
        with self.lock:
            found = [c for c in self.charges.values() if c["reference"] == reference]
        return 200, {"data": found}

    def post(self, path: str, key: str | None, raw: bytes) -> Answer:
        if key is None or not _text(key, 255):
            return _error(400, "invalid", "Idempotency-Key: 1-255 characters.")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if problem := self._problem(path, body):
            return _error(400, "invalid", problem)
        return self._once(key, path, body)

    def _once(self, key: str, path: str, body: dict[str, Any]) -> Answer:
        """Do the request at most once per key; a replay gets the first 201."""
        request = json.dumps([path, body], sort_keys=True)
        with self.lock:
            flawed = path == "/v1/charges" and "replay_charges_again" in self.flaws
            if key in self.keys and not flawed:
                first, answer = self.keys[key]
                if first != request:
                    return _error(422, "idempotency_key_reused", "Used for another request.")
                if answer is None:
                    return _error(409, "idempotency_key_in_flight", "Still running.")
                return answer
            self.keys[key] = (request, None)
        work = self._charge if path == "/v1/charges" else self._refund
        answer = work(body)  # outside the lock: a duplicate meanwhile meets the 409
        with self.lock:
            if answer[0] == 201:
                self.keys[key] = (request, answer)
            else:
                del self.keys[key]  # only a 201 binds a key
        return answer

    @staticmethod
    def _problem(path: str, body: object) -> str:
        fields = {"amount", "currency", "reference", "customer"}
        if path == "/v1/refunds":
            fields = {"charge", "amount"}
        if not isinstance(body, dict) or set(body) != fields:
            return f"The body must be a JSON object of exactly {sorted(fields)}."
        if not _is_amount(body["amount"]):
            return "amount: an integer number of minor units > 0."
        if path == "/v1/refunds":
            return "" if _text(body["charge"], 100) else "charge: a charge id."
        if not (isinstance(body["currency"], str) and re.fullmatch("[A-Z]{3}", body["currency"])):
            return "currency: an ISO 4217 code."
        if not _text(body["reference"], 255):
            return "reference: 1-255 characters."
        customer = body["customer"]
        return "" if isinstance(customer, str) and CUSTOMER.fullmatch(customer) else "customer."

    def _charge(self, body: dict[str, Any]) -> Answer:
        charge = {"id": f"pc_{secrets.token_hex(8)}", "status": "succeeded", **body}
        charge["created_at"] = datetime.now(UTC).isoformat()
        with self.lock:
            self.charges[charge["id"]] = charge
        return 201, charge

    def _refund(self, body: dict[str, Any]) -> Answer:
        with self.lock:
            charge = self.charges.get(body["charge"])
            if charge is None:
                return _error(404, "charge_not_found", "No such charge.")
            left = charge["amount"] - self.refunded.get(charge["id"], 0)
            if body["amount"] > left and "over_refund_allowed" not in self.flaws:
                return _error(422, "refund_exceeds_charge", f"Only {left} left to refund.")
            self.refunded[charge["id"]] = self.refunded.get(charge["id"], 0) + body["amount"]
        refund = {"id": f"pr_{secrets.token_hex(8)}", **body, "currency": charge["currency"]}
        refund |= {"status": "succeeded", "created_at": datetime.now(UTC).isoformat()}
        return 201, refund

    def serve(self) -> ThreadingHTTPServer:
        """Listen on a free port of 127.0.0.1 in a daemon thread; `shutdown()` stops it."""
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the service's pool expects

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet tests

            def _answer(self, answer: Answer) -> None:
                data = json.dumps(answer[1]).encode()
                self.send_response(answer[0])
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urlsplit(self.path)
                if not gateway.authorized(self.headers.get("Authorization")):
                    self._answer(_error(401, "unauthorized", "A valid Bearer key is needed."))
                elif (method, url.path) == ("GET", "/v1/charges"):
                    reference = parse_qs(url.query).get("reference", [""])[0]
                    self._answer(gateway.lookup(reference))
                elif method == "POST" and url.path in ("/v1/charges", "/v1/refunds"):
                    key = self.headers.get("Idempotency-Key")
                    self._answer(gateway.post(url.path, key, raw))
                else:
                    self._answer(_error(404, "not_found", "No such route."))

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
