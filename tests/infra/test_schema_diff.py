"""devtools/schema_diff.py catches each kind of breaking change docs/compatibility.md names,
lets through each kind of change it allows, and finds none between the last release and the
committed schema. Each case changes a copy of the real schema."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import schema_diff
from devtools.schema_diff import CURRENT, breaking_changes, load, releases

Schema = dict[str, Any]
PLACE = ("/api/v1/orders/", "post")
ORDER = "/api/v1/orders/{order_id}/"


@pytest.fixture(scope="module")
def real() -> Schema:
    return load(CURRENT)


def component(schema: Schema, name: str) -> Schema:
    return schema["components"]["schemas"][name]


def op(schema: Schema, path: str, method: str) -> Schema:
    return schema["paths"][path][method]


def changed(real: Schema, change: Callable[[Schema], object]) -> list[str]:
    """The breaking changes found when `change` is applied to a copy of the real schema."""
    new = copy.deepcopy(real)
    change(new)
    return breaking_changes(real, new)


def test_the_last_release_and_the_committed_schema_are_compatible(real: Schema) -> None:
    # given / when / then
    assert breaking_changes(load(releases()[-1]), real) == []
    assert breaking_changes(real, copy.deepcopy(real)) == []


# --- caught ----------------------------------------------------------------------------------


def drop_path(s: Schema) -> None:
    del s["paths"][ORDER]


def drop_operation(s: Schema) -> None:
    del s["paths"]["/api/v1/orders/"]["get"]


def drop_answer_field(s: Schema) -> None:
    del component(s, "OrderOut")["properties"]["queue"]


def answer_field_optional(s: Schema) -> None:
    component(s, "OrderOut")["required"].remove("payable")


def answer_field_nullable(s: Schema) -> None:
    component(s, "OrderOut")["properties"]["payable"]["type"] = ["integer", "null"]


def drop_status_value(s: Schema) -> None:
    component(s, "OrderStatusEnum")["enum"].remove("expired")


def drop_error_code(s: Schema) -> None:
    component(s, "Error409OutOfStockBudgetExhaustedCampaignNotActiveOutErrorEnum")["enum"].remove(
        "budget_exhausted"
    )


def answer_type(s: Schema) -> None:
    component(s, "OrderOut")["properties"]["subtotal"]["type"] = "string"


def request_type(s: Schema) -> None:
    component(s, "OrderItemInRequest")["properties"]["quantity"]["type"] = "string"


def new_required_field(s: Schema) -> None:
    place_in = component(s, "OrderPlaceInRequest")
    place_in["properties"]["store"] = {"type": "string"}
    place_in["required"].append("store")


def optional_field_required(s: Schema) -> None:
    component(s, "OrderPlaceInRequest")["required"].append("coupon_code")


def drop_input(s: Schema) -> None:
    del component(s, "OrderPlaceInRequest")["properties"]["callback_url"]


def new_required_header(s: Schema) -> None:
    op(s, *PLACE)["parameters"].append(
        {"in": "header", "name": "X-Shop", "schema": {"type": "string"}, "required": True}
    )


def optional_parameter_required(s: Schema) -> None:
    for parameter in op(s, "/api/v1/orders/", "get")["parameters"]:
        if parameter["name"] == "customer_id":
            parameter["required"] = True


def lower_maximum(s: Schema) -> None:
    component(s, "OrderItemInRequest")["properties"]["quantity"]["maximum"] = 50


def fewer_items(s: Schema) -> None:
    component(s, "OrderPlaceInRequest")["properties"]["items"]["maxItems"] = 10


def shorter_key(s: Schema) -> None:
    for parameter in op(s, *PLACE)["parameters"]:
        if parameter["name"] == "Idempotency-Key":
            parameter["schema"]["maxLength"] = 64


def stricter_pattern(s: Schema) -> None:
    component(s, "OrderPlaceInRequest")["properties"]["customer_id"]["pattern"] = "^c-[0-9]+$"


def null_refused(s: Schema) -> None:
    component(s, "OrderPlaceInRequest")["properties"]["coupon_code"]["type"] = "string"


def drop_success_status(s: Schema) -> None:
    del op(s, *PLACE)["responses"]["202"]


def drop_always_sent_header(s: Schema) -> None:
    del op(s, *PLACE)["responses"]["202"]["headers"]["Location"]


def header_sometimes(s: Schema) -> None:
    del op(s, *PLACE)["responses"]["429"]["headers"]["Retry-After"]["required"]


HOOK = "webhook orderStatusChanged POST"


def webhook(s: Schema) -> Schema:
    return s["webhooks"]["orderStatusChanged"]["post"]


def drop_webhook(s: Schema) -> None:
    del s["webhooks"]["orderStatusChanged"]


def drop_webhook_header(s: Schema) -> None:
    webhook(s)["parameters"] = [p for p in webhook(s)["parameters"] if p["name"] != "X-Event-Id"]


def webhook_header_sometimes(s: Schema) -> None:
    for parameter in webhook(s)["parameters"]:
        if parameter["name"] == "X-Delivery-Id":
            parameter["required"] = False


def webhook_body_field_dropped(s: Schema) -> None:
    webhook(s)["requestBody"]["content"]["application/json"]["schema"] = {
        "type": "object",
        "properties": {"id": {"type": "string"}},
    }


def webhook_answer_narrowed(s: Schema) -> None:
    del webhook(s)["responses"]["2XX"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (drop_path, f"GET {ORDER}: operation removed"),
        (drop_operation, "GET /api/v1/orders/: operation removed"),
        (drop_answer_field, f"GET {ORDER} 200.queue: field removed"),
        (answer_field_optional, f"GET {ORDER} 200.payable: no longer always in the answer"),
        (answer_field_nullable, f"GET {ORDER} 200.payable: may now be null"),
        (drop_status_value, f"GET {ORDER} 200.status: enum values removed: expired"),
        (drop_error_code, "POST /api/v1/orders/ 409.error: enum values removed: budget_exhausted"),
        (answer_type, f"GET {ORDER} 200.subtotal: type changed from integer to string"),
        (
            request_type,
            "POST /api/v1/orders/ request body.items[].quantity: type changed from integer to "
            "string",
        ),
        (new_required_field, "POST /api/v1/orders/ request body.store: new required input"),
        (
            optional_field_required,
            "POST /api/v1/orders/ request body.coupon_code: optional input made required",
        ),
        (drop_input, "POST /api/v1/orders/ request body.callback_url: input removed"),
        (new_required_header, "POST /api/v1/orders/ header parameter x-shop: new required input"),
        (
            optional_parameter_required,
            "GET /api/v1/orders/ query parameter customer_id: optional input made required",
        ),
        (
            lower_maximum,
            "POST /api/v1/orders/ request body.items[].quantity: maximum narrowed to 50",
        ),
        (fewer_items, "POST /api/v1/orders/ request body.items: maxItems narrowed to 10"),
        (
            shorter_key,
            "POST /api/v1/orders/ header parameter idempotency-key: maxLength narrowed to 64",
        ),
        (
            stricter_pattern,
            "POST /api/v1/orders/ request body.customer_id: pattern narrowed to ^c-[0-9]+$",
        ),
        (null_refused, "POST /api/v1/orders/ request body.coupon_code: null no longer accepted"),
        (drop_success_status, "POST /api/v1/orders/ 202: success status removed"),
        (drop_always_sent_header, "POST /api/v1/orders/ 202 header Location: removed"),
        (header_sometimes, "POST /api/v1/orders/ 429 header Retry-After: no longer always sent"),
        (drop_webhook, f"{HOOK}: removed"),
        (drop_webhook_header, f"{HOOK} request header X-Event-Id: removed"),
        (webhook_header_sometimes, f"{HOOK} request header X-Delivery-Id: no longer always sent"),
        (webhook_body_field_dropped, f"{HOOK} request.status: field removed"),
        (webhook_answer_narrowed, f"{HOOK} 2XX: answer no longer taken"),
    ],
    ids=lambda v: v.__name__ if callable(v) else "",
)
def test_a_breaking_change_is_caught(
    real: Schema, change: Callable[[Schema], object], expected: str
) -> None:
    # given / when
    problems = changed(real, change)
    # then
    assert expected in problems, problems


def test_null_is_judged_alike_in_both_spellings() -> None:
    """OpenAPI 3.0's `nullable: true` (1.1.0) and 3.1's null type (1.2.0 on) say the same: a
    move between them is no change, and null dropped is caught in either."""
    # given
    old = load(releases()[0])
    assert old["openapi"].startswith("3.0")
    coupon = component(old, "OrderPlaceInRequest")["properties"]["coupon_code"]
    assert coupon["nullable"] is True
    as_31 = copy.deepcopy(old)
    spelled = component(as_31, "OrderPlaceInRequest")["properties"]["coupon_code"]
    del spelled["nullable"]
    spelled["type"] = ["string", "null"]
    refused = copy.deepcopy(old)
    del component(refused, "OrderPlaceInRequest")["properties"]["coupon_code"]["nullable"]
    # when / then
    assert breaking_changes(old, as_31) == []
    assert breaking_changes(as_31, old) == []
    assert "POST /api/v1/orders/ request body.coupon_code: null no longer accepted" in (
        breaking_changes(old, refused)
    )


# --- allowed ---------------------------------------------------------------------------------


def new_answer_field(s: Schema) -> None:
    component(s, "OrderOut")["properties"]["shop"] = {"type": "string"}
    component(s, "OrderOut")["required"].append("shop")


def new_status_value(s: Schema) -> None:
    component(s, "OrderStatusEnum")["enum"].append("on_hold")
    component(s, "ReasonEnum")["enum"].append("fraud_suspected")


def new_error_code(s: Schema) -> None:
    component(s, "Error409NotCancellableOutErrorEnum")["enum"].append("refund_pending")


def new_error_status(s: Schema) -> None:
    op(s, *PLACE)["responses"]["451"] = op(s, *PLACE)["responses"]["403"]


def error_status_dropped(s: Schema) -> None:
    del op(s, *PLACE)["responses"]["501"]


def new_optional_input(s: Schema) -> None:
    component(s, "OrderPlaceInRequest")["properties"]["note"] = {"type": "string"}
    op(s, "/api/v1/orders/", "get")["parameters"].append(
        {"in": "query", "name": "status", "schema": {"type": "string"}}
    )


def wider_inputs(s: Schema) -> None:
    component(s, "OrderItemInRequest")["properties"]["quantity"]["maximum"] = 999
    component(s, "OrderPlaceInRequest")["properties"]["items"]["maxItems"] = 50
    del component(s, "OrderPlaceInRequest")["properties"]["customer_id"]["pattern"]


def new_operation_and_header(s: Schema) -> None:
    s["paths"]["/api/v1/stores/"] = {"get": copy.deepcopy(op(s, "/api/v1/campaigns/", "get"))}
    op(s, ORDER, "get")["responses"]["200"]["headers"]["ETag"] = {"schema": {"type": "string"}}


def texts(s: Schema) -> None:
    op(s, *PLACE)["description"] = "Places an order."
    s["info"]["version"] = "1.2.0"


def component_renamed(s: Schema) -> None:
    """The same schema under another component name: only references changed."""
    text = json.dumps(s).replace('"#/components/schemas/OrderOut"', '"#/components/schemas/Order"')
    renamed = json.loads(text)
    renamed["components"]["schemas"]["Order"] = renamed["components"]["schemas"].pop("OrderOut")
    s.clear()
    s.update(renamed)


def webhook_grows(s: Schema) -> None:
    """A new optional header on the callback, a new answer taken, and a second webhook."""
    webhook(s)["parameters"].append(
        {"name": "X-Attempt", "in": "header", "required": False, "schema": {"type": "integer"}}
    )
    webhook(s)["responses"]["410"] = {"description": "Stop sending."}
    s["webhooks"]["campaignEnded"] = copy.deepcopy(s["webhooks"]["orderStatusChanged"])


@pytest.mark.parametrize(
    "change",
    [
        new_answer_field,
        new_status_value,
        new_error_code,
        new_error_status,
        error_status_dropped,
        new_optional_input,
        wider_inputs,
        new_operation_and_header,
        texts,
        component_renamed,
        webhook_grows,
    ],
    ids=lambda f: f.__name__,
)
def test_a_change_the_promise_allows_passes(
    real: Schema, change: Callable[[Schema], object]
) -> None:
    # given / when / then
    assert changed(real, change) == []


def test_a_request_enum_may_grow_but_not_shrink(real: Schema) -> None:
    # given: an input that takes listed values
    old = copy.deepcopy(real)
    component(old, "OrderPlaceInRequest")["properties"]["coupon_code"]["enum"] = ["A", "B"]
    grown, shrunk, listed = (copy.deepcopy(old) for _ in range(3))
    component(grown, "OrderPlaceInRequest")["properties"]["coupon_code"]["enum"] = ["A", "B", "C"]
    component(shrunk, "OrderPlaceInRequest")["properties"]["coupon_code"]["enum"] = ["A"]
    component(listed, "OrderPlaceInRequest")["properties"]["callback_url"]["enum"] = ["x"]
    # when / then
    assert breaking_changes(old, grown) == []
    assert breaking_changes(old, shrunk) == [
        "POST /api/v1/orders/ request body.coupon_code: enum values removed: B"
    ]
    assert breaking_changes(old, listed) == [
        "POST /api/v1/orders/ request body.callback_url: values limited to x"
    ]


def test_the_command_fails_on_a_breaking_change(
    real: Schema, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    old, new = tmp_path / "1.0.0.yaml", tmp_path / "new.yaml"
    old.write_text(yaml.safe_dump(real))
    broken = copy.deepcopy(real)
    drop_answer_field(broken)
    new.write_text(yaml.safe_dump(broken))
    # when
    failed = schema_diff.main([str(old), str(new)])
    passed = schema_diff.main([str(old), str(old)])
    # then
    assert (failed, passed) == (1, 0)
    assert f"breaking: GET {ORDER} 200.queue: field removed" in capsys.readouterr().out
