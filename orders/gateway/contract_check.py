"""A payment gateway checked against docs/gateway-protocol.md, over real HTTP: the promises the
service relies on, each one a named check that passes or says why not.

``manage.py gateway_check URL`` runs it. The checks make a few small charges for the customer
``gateway-check`` under references unique to the run, and refund them, so that several runs
can share a test gateway. They cannot provoke a decline, a 429 or a 5xx on a gateway they do
not control, so those promises are not checked here. What the service reads from an answer
is checked through its own ``GatewayClient``; the rest (status codes, error bodies, headers,
bodies the client would never send) with raw urllib3. Imports nothing from Django.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final

import urllib3
from urllib3.exceptions import HTTPError as TransportError

from orders.gateway.client import GatewayClient

AMOUNT: Final = 1000  # minor units: 10.00
PARTIAL: Final = 400
CUSTOMER: Final = "gateway-check"
CONCURRENT_REQUESTS: Final = 6
CHARGE_FIELDS: Final = ("id", "status", "amount", "currency", "reference", "customer", "created_at")
REFUND_FIELDS: Final = ("id", "charge", "amount", "currency", "status", "created_at")
MAX_SHOWN: Final = 200  # characters of an answer quoted in a failure
MAX_ID_LENGTH: Final = 100  # the service stores ids in 100 characters (orders/models.py)


class CheckFailed(Exception):
    """A check's promise is broken; the message says how."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    why: str = ""

    def line(self) -> str:
        return f"PASS {self.name}" if self.passed else f"FAIL {self.name}: {self.why}"


@dataclass(frozen=True)
class Reply:
    """One answer: its status, headers and body (parsed JSON, or None), and its text."""

    status: int
    headers: urllib3.HTTPHeaderDict
    body: object
    text: str

    def __str__(self) -> str:
        text = self.text if len(self.text) <= MAX_SHOWN else self.text[: MAX_SHOWN - 1] + "…"
        return f"HTTP {self.status} {text}"


_SAME_KEY: Final = object()  # the run's own key (the default of Probe.request's ``key``)


class Probe:
    """Raw requests to the gateway at ``url``: any method, body, key and headers."""

    def __init__(self, url: str, *, key: str, timeout: float) -> None:
        self._http = urllib3.connection_from_url(
            url,
            maxsize=CONCURRENT_REQUESTS,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=False,
        )
        self._base_path = (urllib3.util.parse_url(url).path or "").rstrip("/")
        self.key = key

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        raw: bytes | None = None,
        idempotency_key: str | None = None,
        key: object = _SAME_KEY,
        fields: dict[str, str] | None = None,
    ) -> Reply:
        """Send one request; ``key`` None sends no Authorization. Raises TransportError or
        OSError when no answer came."""
        headers = {"Accept": "application/json"}
        if key is _SAME_KEY:
            key = self.key
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        body = raw
        if json_body is not None:
            body = json.dumps(json_body).encode()
        if body is not None:
            headers["Content-Type"] = "application/json"
        answer = self._http.request(
            method, self._base_path + path, body=body, fields=fields, headers=headers
        )
        text = answer.data.decode("utf-8", errors="replace")
        try:
            parsed: object = json.loads(answer.data)
        except ValueError:
            parsed = None
        return Reply(answer.status, answer.headers, parsed, text)


# --- what an answer must look like -------------------------------------------------------


@contextmanager
def about(what: str) -> Iterator[None]:
    """A failure inside says first what was being tried."""
    try:
        yield
    except CheckFailed as exc:
        raise CheckFailed(f"{what}: {exc}") from None


def expect_status(reply: Reply, status: int) -> dict[str, object]:
    """The body of ``reply``, which must have ``status`` and a JSON object body."""
    if reply.status != status:
        raise CheckFailed(f"expected HTTP {status}, got {reply}")
    if not isinstance(reply.body, dict):
        raise CheckFailed(f"HTTP {status} without a JSON object body: {reply}")
    return reply.body


def expect_error(reply: Reply, status: int, code: str) -> None:
    """``reply`` is the error envelope ``{"error": code, "detail": "..."}`` with ``status``."""
    body = expect_status(reply, status)
    if body.get("error") != code:
        raise CheckFailed(f'expected HTTP {status} with "error": "{code}", got {reply}')
    if not isinstance(body.get("detail"), str):
        raise CheckFailed(f'HTTP {status} {code} without a "detail" sentence: {reply}')


def expect_fields(body: dict[str, object], names: tuple[str, ...], what: str) -> None:
    if missing := [name for name in names if name not in body]:
        raise CheckFailed(f"{what} lacks {', '.join(missing)}: {body}")
    record_id = body["id"]
    if not (isinstance(record_id, str) and 0 < len(record_id) <= MAX_ID_LENGTH):
        raise CheckFailed(f"{what}'s id is not a string of 1-{MAX_ID_LENGTH}: {record_id!r}")
    if not isinstance(body["created_at"], str):
        raise CheckFailed(f"{what}'s created_at is not a string: {body['created_at']!r}")


def expect_echo(body: dict[str, object], sent: dict[str, object], what: str) -> None:
    if differ := [name for name, value in sent.items() if body.get(name) != value]:
        raise CheckFailed(f"{what} differs from the request in {', '.join(differ)}: {body}")


# --- the run -----------------------------------------------------------------------------


@dataclass
class Run:
    """What the checks share: the connections, the run's unique names, and the charges made."""

    probe: Probe
    client: GatewayClient
    currency: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    charge: dict[str, object] | None = None  # charge_succeeds's 201 body
    sent: dict[str, object] | None = None  # and what it sent
    extra_charges: list[str] = field(default_factory=list)  # ids to refund whole at the end
    _serial: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    def name(self, what: str) -> str:
        """A reference or key no other run uses."""
        return f"gateway-check-{self.run_id}-{what}-{next(self._serial)}"

    def charge_body(self, reference: str, amount: int = AMOUNT) -> dict[str, object]:
        return {
            "amount": amount,
            "currency": self.currency,
            "reference": reference,
            "customer": CUSTOMER,
        }

    def first_charge(self) -> tuple[dict[str, object], dict[str, object]]:
        if self.charge is None or self.sent is None:
            raise CheckFailed("needs the charge of charge_succeeds, which failed")
        return self.charge, self.sent

    def post_charge(self, body: dict[str, object], key: str) -> Reply:
        return self.probe.request("POST", "/v1/charges", json_body=body, idempotency_key=key)

    def post_refund(self, charge_id: object, amount: int, key: str) -> Reply:
        body = {"charge": charge_id, "amount": amount}
        return self.probe.request("POST", "/v1/refunds", json_body=body, idempotency_key=key)

    def charges_for(self, reference: str) -> list[dict[str, object]]:
        """The look-up's ``data``, as the gateway answered it (not filtered)."""
        body = expect_status(
            self.probe.request("GET", "/v1/charges", fields={"reference": reference}), 200
        )
        data = body.get("data")
        if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
            raise CheckFailed(f'the look-up\'s "data" is not a list of objects: {body}')
        return data

    def expect_charges(self, reference: str, count: int, why: str) -> list[dict[str, object]]:
        charges = self.charges_for(reference)
        if len(charges) != count:
            ids = [c.get("id") for c in charges]
            raise CheckFailed(f"{why}: the look-up lists {len(charges)} charges {ids}")
        return charges


# --- the checks, in the order they run ---------------------------------------------------


def check_key_accepted(run: Run) -> None:
    """Run first: every other check needs the key, so a refusal here ends the run."""
    reply = run.probe.request("GET", "/v1/charges", fields={"reference": run.name("unused")})
    if reply.status == HTTPStatus.UNAUTHORIZED:
        raise CheckFailed(f"the gateway refuses this key (--key): {reply}")
    expect_status(reply, 200)


def check_bad_key_refused(run: Run) -> None:
    reference = run.name("bad-key")
    for key, label in ((None, "no key"), ("not-the-key", "a wrong key")):
        reply = run.probe.request(
            "POST",
            "/v1/charges",
            json_body=run.charge_body(reference),
            idempotency_key=run.name("key"),
            key=key,
        )
        expect_error(reply, 401, "unauthorized")
        lookup = run.probe.request("GET", "/v1/charges", fields={"reference": reference}, key=key)
        with about(f"look-up with {label}"):
            expect_error(lookup, 401, "unauthorized")
    run.expect_charges(reference, 0, "a charge with a bad key was made")


def check_charge_succeeds(run: Run) -> None:
    sent = run.charge_body(run.name("ref"))
    key = run.name("key")
    body = expect_status(run.post_charge(sent, key), 201)
    expect_fields(body, CHARGE_FIELDS, "the charge")
    expect_echo(body, sent, "the charge")
    if body["status"] != "succeeded":
        raise CheckFailed(f'expected "status": "succeeded" for {CUSTOMER}, got {body}')
    run.charge, run.sent = body, {**sent, "key": key}


def check_charge_replayed(run: Run) -> None:
    first, sent = run.first_charge()
    body = {name: value for name, value in sent.items() if name != "key"}
    again = expect_status(run.post_charge(body, str(sent["key"])), 201)
    if again != first:
        raise CheckFailed(f"the replay answered another body: {again}, first {first}")
    outcome = run.client.charge(
        idempotency_key=str(sent["key"]),
        amount=AMOUNT,
        currency=run.currency,
        reference=str(sent["reference"]),
        customer=CUSTOMER,
    )
    if (outcome.kind, outcome.charge_id) != ("succeeded", first["id"]):
        raise CheckFailed(f"the service's client read the replay as {outcome}")
    run.expect_charges(str(sent["reference"]), 1, "the key was replayed twice")


def check_lookup_finds_charge(run: Run) -> None:
    first, sent = run.first_charge()
    [listed] = run.expect_charges(str(sent["reference"]), 1, "one charge was made")
    expect_fields(listed, CHARGE_FIELDS, "the listed charge")
    if differ := [name for name in CHARGE_FIELDS if listed[name] != first[name]]:
        raise CheckFailed(f"the listed charge differs in {', '.join(differ)}: {listed}")
    charges = run.client.charges_for(reference=str(sent["reference"]))
    if not isinstance(charges, list) or [c.get("id") for c in charges] != [first["id"]]:
        raise CheckFailed(f"the service's client read the look-up as {charges}")


def check_lookup_of_unused_reference_is_empty(run: Run) -> None:
    run.expect_charges(run.name("unused"), 0, "nothing was charged for it")


def check_lookup_without_reference_refused(run: Run) -> None:
    expect_error(run.probe.request("GET", "/v1/charges"), 400, "invalid")


def check_key_reused_for_another_request_refused(run: Run) -> None:
    first, sent = run.first_charge()
    body = {name: value for name, value in sent.items() if name != "key"}
    changed = {**body, "amount": AMOUNT + 1}
    expect_error(run.post_charge(changed, str(sent["key"])), 422, "idempotency_key_reused")
    other_path = run.post_refund(first["id"], 1, str(sent["key"]))
    with about("the charge's key on /v1/refunds"):
        expect_error(other_path, 422, "idempotency_key_reused")
    run.expect_charges(str(sent["reference"]), 1, "a reused key made a charge")


def check_concurrent_same_key_charges_once(run: Run) -> None:
    body = run.charge_body(run.name("ref"))
    key = run.name("key")
    with ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS) as pool:
        replies = list(pool.map(lambda _: run.post_charge(body, key), range(CONCURRENT_REQUESTS)))
    created = [r.body for r in replies if r.status == HTTPStatus.CREATED]
    for reply in replies:
        if reply.status != HTTPStatus.CREATED:
            expect_error(reply, 409, "idempotency_key_in_flight")
    if not created or any(c != created[0] for c in created):
        raise CheckFailed(f"the 201s differ or none came: {[str(r) for r in replies]}")
    [charge] = run.expect_charges(str(body["reference"]), 1, "concurrent requests, one key")
    run.extra_charges.append(str(charge["id"]))


# Bodies a charge must refuse with 400 invalid: (what, raw bytes or a JSON body).
_BAD_CHARGES: Final[tuple[tuple[str, Callable[[dict[str, object]], object]], ...]] = (
    ("a body that is not JSON", lambda _: b"amount=1000"),
    ("a JSON array", lambda body: [body]),
    ("no amount", lambda body: {k: v for k, v in body.items() if k != "amount"}),
    ("amount 0", lambda body: {**body, "amount": 0}),
    ("a negative amount", lambda body: {**body, "amount": -AMOUNT}),
    ("a fractional amount", lambda body: {**body, "amount": AMOUNT + 0.5}),
    ("the amount as a string", lambda body: {**body, "amount": str(AMOUNT)}),
    ("no reference", lambda body: {k: v for k, v in body.items() if k != "reference"}),
    ("an unknown field", lambda body: {**body, "note": "x"}),
)


def check_malformed_charge_refused(run: Run) -> None:
    body = run.charge_body(run.name("ref"))
    for what, make in _BAD_CHARGES:
        bad = make(body)
        raw, json_body = (bad, None) if isinstance(bad, bytes) else (None, bad)
        reply = run.probe.request(
            "POST", "/v1/charges", raw=raw, json_body=json_body, idempotency_key=run.name("key")
        )
        with about(what):
            expect_error(reply, 400, "invalid")
    for what, key in (("no Idempotency-Key", None), ("a 256-character key", "k" * 256)):
        reply = run.probe.request("POST", "/v1/charges", json_body=body, idempotency_key=key)
        with about(what):
            expect_error(reply, 400, "invalid")
    run.expect_charges(str(body["reference"]), 0, "a refused request made a charge")


def check_refusal_leaves_key_unused(run: Run) -> None:
    key = run.name("key")
    body = run.charge_body(run.name("ref"))
    expect_error(run.post_charge({**body, "amount": 0}, key), 400, "invalid")
    reply = run.post_charge(body, key)
    with about("the key, refused once with 400, then"):
        charge = expect_status(reply, 201)
    run.extra_charges.append(str(charge.get("id")))
    refund_key = run.name("refund-key")
    reply = run.post_refund(run.name("no-such-charge"), 1, refund_key)
    expect_error(reply, 404, "charge_not_found")
    with about("the refund key, refused once with 404, then"):
        expect_status(run.post_refund(charge.get("id"), AMOUNT, refund_key), 201)
    run.extra_charges.remove(str(charge.get("id")))


def check_refund_partial(run: Run) -> None:
    first, _ = run.first_charge()
    key = run.name("refund-key")
    body = expect_status(run.post_refund(first["id"], PARTIAL, key), 201)
    expect_fields(body, REFUND_FIELDS, "the refund")
    sent = {"charge": first["id"], "amount": PARTIAL, "currency": run.currency}
    expect_echo(body, sent, "the refund")
    if body["status"] != "succeeded":
        raise CheckFailed(f'expected "status": "succeeded", got {body}')
    again = expect_status(run.post_refund(first["id"], PARTIAL, key), 201)
    if again != body:
        raise CheckFailed(f"the replay answered another body: {again}, first {body}")
    outcome = run.client.refund(idempotency_key=key, charge_id=str(first["id"]), amount=PARTIAL)
    if (outcome.kind, outcome.refund_id) != ("succeeded", body["id"]):
        raise CheckFailed(f"the service's client read the replay as {outcome}")


def check_refund_exceeding_charge_refused(run: Run) -> None:
    first, _ = run.first_charge()
    rest = AMOUNT - PARTIAL
    reply = run.post_refund(first["id"], rest + 1, run.name("refund-key"))
    expect_error(reply, 422, "refund_exceeds_charge")
    outcome = run.client.refund(
        idempotency_key=run.name("refund-key"), charge_id=str(first["id"]), amount=rest + 1
    )
    if outcome.kind != "failed":
        raise CheckFailed(f"the service's client read the refusal as {outcome}")


def check_refunds_add_up_to_the_charge(run: Run) -> None:
    first, _ = run.first_charge()
    rest = AMOUNT - PARTIAL
    reply = run.post_refund(first["id"], rest, run.name("refund-key"))
    with about(f"refunding the {rest} left after {PARTIAL} (once, replayed)"):
        expect_status(reply, 201)
    reply = run.post_refund(first["id"], 1, run.name("refund-key"))
    with about("1 more of a charge refunded whole"):
        expect_error(reply, 422, "refund_exceeds_charge")


def check_refund_of_unknown_charge_refused(run: Run) -> None:
    charge_id = run.name("no-such-charge")
    reply = run.post_refund(charge_id, PARTIAL, run.name("refund-key"))
    expect_error(reply, 404, "charge_not_found")
    outcome = run.client.refund(
        idempotency_key=run.name("refund-key"), charge_id=charge_id, amount=PARTIAL
    )
    if outcome.kind != "failed":
        raise CheckFailed(f"the service's client read the refusal as {outcome}")


def check_malformed_refund_refused(run: Run) -> None:
    first, _ = run.first_charge()
    bad: tuple[tuple[str, object], ...] = (
        ("amount 0", {"charge": first["id"], "amount": 0}),
        ("no charge", {"amount": 1}),
        ("the amount as a string", {"charge": first["id"], "amount": "1"}),
        ("a JSON array", [{"charge": first["id"], "amount": 1}]),
    )
    for what, body in bad:
        reply = run.probe.request(
            "POST", "/v1/refunds", json_body=body, idempotency_key=run.name("refund-key")
        )
        with about(what):
            expect_error(reply, 400, "invalid")


def check_refund_whole_charge(run: Run) -> None:
    """As the service refunds: the whole charge, read through its client."""
    if not run.extra_charges:
        raise CheckFailed("needs the charge of concurrent_same_key_charges_once, which failed")
    for charge_id in list(run.extra_charges):
        outcome = run.client.refund(
            idempotency_key=run.name("refund-key"), charge_id=charge_id, amount=AMOUNT
        )
        if outcome.kind != "succeeded":
            raise CheckFailed(f"refunding {charge_id} whole: the service's client read {outcome}")
        run.extra_charges.remove(charge_id)


CHECKS: Final[tuple[Callable[[Run], None], ...]] = (
    check_key_accepted,
    check_bad_key_refused,
    check_charge_succeeds,
    check_charge_replayed,
    check_lookup_finds_charge,
    check_lookup_of_unused_reference_is_empty,
    check_lookup_without_reference_refused,
    check_key_reused_for_another_request_refused,
    check_concurrent_same_key_charges_once,
    check_malformed_charge_refused,
    check_refusal_leaves_key_unused,
    check_refund_partial,
    check_refund_exceeding_charge_refused,
    check_refunds_add_up_to_the_charge,
    check_refund_of_unknown_charge_refused,
    check_malformed_refund_refused,
    check_refund_whole_charge,
)


def check_name(check: Callable[[Run], None]) -> str:
    return check.__name__.removeprefix("check_")


def run_checks(
    url: str,
    *,
    key: str,
    timeout: float,
    currency: str = "CNY",
    report: Callable[[CheckResult], None] = lambda result: None,
) -> list[CheckResult]:
    """Run every check against the gateway at ``url``, in order, each result passed to
    ``report`` as it comes. A check that fails does not stop the others, except the first:
    when the gateway refuses the key, nothing else can be checked."""
    probe = Probe(url, key=key, timeout=timeout)
    client = GatewayClient(base_url=url, api_key=key, timeout=timeout, pool_size=2)
    run = Run(probe=probe, client=client, currency=currency)
    results = []
    try:
        for check in CHECKS:
            try:
                check(run)
                result = CheckResult(check_name(check), passed=True)
            except CheckFailed as exc:
                result = CheckResult(check_name(check), passed=False, why=str(exc))
            except (TransportError, OSError) as exc:
                why = f"no answer: {type(exc).__name__}: {exc}"
                result = CheckResult(check_name(check), passed=False, why=why)
            except Exception as exc:  # an answer so odd that the check tripped over it
                why = f"could not read the answers: {type(exc).__name__}: {exc}"
                result = CheckResult(check_name(check), passed=False, why=why)
            report(result)
            results.append(result)
            if check is check_key_accepted and not result.passed:
                break
    finally:
        probe.close()
        client.close()
    return results
