"""The verification samples we hand integrators (docs/samples/verify_webhook.py and .js) run
against a real delivery: an order placed through the API and paid by a real worker, its
callback captured by a local receiver (headers and raw body). Both samples accept it, and
refuse it with a changed body or a malformed X-Signature. The delivery matches the schema's
webhook (docs/openapi.yaml, `webhooks.orderStatusChanged`). Then an operator resends it from
the order's page: the worker POSTs the same event (X-Event-Id, X-Event-Time, body) under a new
X-Delivery-Id, and the samples accept that too."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
import yaml
from django.test import Client

from orders.models import Order
from shop.models import ApiClient
from tests.conftest import api_for
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.pipeline import CallbackReceiver, all_terminal, callback_receiver, wait_for

pytestmark = [
    pytest.mark.pipeline,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("worker"),
]

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "docs" / "samples"
NODE = shutil.which("node") or "/usr/bin/node"


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with callback_receiver() as receiver:
        yield receiver


def samples(secret: str, body: bytes, header: str, tmp_path: Path) -> dict[str, int]:
    """Each sample's exit status on this delivery (0: valid, 1: refused)."""
    body_file = tmp_path / f"body-{uuid.uuid4().hex}"
    body_file.write_bytes(body)
    commands = {
        "python": [sys.executable, str(SAMPLES / "verify_webhook.py")],
        "node": [NODE, str(SAMPLES / "verify_webhook.js")],
    }
    return {
        name: subprocess.run(
            [*command, secret, str(body_file), header],
            capture_output=True,
            timeout=30,
            check=False,
        ).returncode
        for name, command in commands.items()
    }


def check_against_the_schema(headers: dict[str, str], body: bytes) -> None:
    """The delivery is what `webhooks.orderStatusChanged` in docs/openapi.yaml says."""
    schema = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    hook = schema["webhooks"]["orderStatusChanged"]["post"]
    for parameter in hook["parameters"]:
        name = parameter["name"]
        if parameter["required"]:
            assert name in headers, name
        if name in headers:
            jsonschema.validate(headers[name], parameter["schema"])
    datetime.fromisoformat(headers["X-Event-Time"])  # the format's promise, checked by hand
    body_schema = hook["requestBody"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**body_schema, "components": schema["components"]}).validate(
        json.loads(body)
    )


def test_the_samples_verify_a_real_delivery_and_its_resend(
    gateway, receiver: CallbackReceiver, tmp_path: Path, django_user_model: type
) -> None:
    # given: an order placed through the API, paid by the worker, its callback captured
    client: ApiClient = ApiClientFactory()
    api = api_for(client)
    tea = ProductFactory(price=1800)
    placed = api.post(
        "/api/v1/orders/",
        {
            "customer_id": "c-1",
            "items": [{"sku": tea.sku, "quantity": 1}],
            "callback_url": receiver.url,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex,
    )
    assert placed.status_code == 202, placed.content
    order = Order.objects.get(public_id=placed.json()["id"])
    wait_for(all_terminal([order.pk]), what="the order")
    wait_for(lambda: len(receiver.with_status("paid")) == 1, what="the paid callback")
    ((headers, body),) = receiver.with_status("paid")
    secret, signed = client.webhook_secret, headers["X-Signature"]
    # when
    real = samples(secret, body, signed, tmp_path)
    tampered = samples(secret, body.replace(b'"paid"', b'"paie"'), signed, tmp_path)
    malformed = {
        header: samples(secret, body, header, tmp_path)
        for header in ["", "v1=" + signed.split("v1=")[1], "t=soon,v1=00", signed.split(",")[0]]
    }
    # then
    assert real == {"python": 0, "node": 0}
    assert tampered == {"python": 1, "node": 1}
    assert malformed == {h: {"python": 1, "node": 1} for h in malformed}
    check_against_the_schema(headers, body)

    # when: an operator resends the order's latest callback from its page
    staff = django_user_model.objects.create_superuser("root", password="x")
    admin = Client()
    admin.force_login(staff)
    asked = admin.post(f"/admin/orders/order/{order.pk}/resend/", {"confirm": "yes"})
    assert asked.status_code == 302
    wait_for(lambda: len(receiver.with_status("paid")) == 2, what="the resent callback")
    again_headers, again_body = receiver.with_status("paid")[1]
    # then: the same event, a new delivery, and the samples accept it
    assert again_headers["X-Event-Id"] == headers["X-Event-Id"]
    assert again_headers["X-Event-Time"] == headers["X-Event-Time"]
    assert again_headers["X-Delivery-Id"] != headers["X-Delivery-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", again_headers["X-Delivery-Id"])
    assert again_body == body
    assert samples(secret, again_body, again_headers["X-Signature"], tmp_path) == {
        "python": 0,
        "node": 0,
    }
    check_against_the_schema(again_headers, again_body)
