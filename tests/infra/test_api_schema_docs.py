"""The published schema is a guide an integrator can work from: every operation has a summary,
a description and examples of its requests and answers; every error status lists its codes
and what the chatbot should do; every example is valid against the schema it illustrates;
and nothing points outside the repository."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from tests.infra.test_api_schema import as_json_schema, fetch_schema

pytestmark = pytest.mark.django_db

ACTIONS = ("Retry later with the same Idempotency-Key", "Tell the shopper", "Give up")


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def examples_of(content: dict[str, Any]) -> list[Any]:
    return [e["value"] for media in content.values() for e in media.get("examples", {}).values()]


def test_every_operation_has_a_summary_a_description_and_examples() -> None:
    # given
    schema = fetch_schema()
    missing = []
    # when
    for method, path, op in operations(schema):
        name = f"{method} {path}"
        if not op.get("summary", "").strip():
            missing.append(f"{name}: summary")
        if len(op.get("description", "").strip()) < 80:
            missing.append(f"{name}: description")
        body = op.get("requestBody")
        if body is not None and not examples_of(body["content"]):
            missing.append(f"{name}: request example")
        for status, response in op["responses"].items():
            if not examples_of(response.get("content", {})):
                missing.append(f"{name} {status}: response example")
    # then
    assert missing == []
    assert len(operations(schema)) == 9


def test_every_error_status_names_its_codes_and_what_to_do() -> None:
    # given
    schema = fetch_schema()
    problems = []
    # when
    for method, path, op in operations(schema):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            codes = {e["error"] for e in examples_of(response["content"])}
            described = response.get("description", "")
            for code in codes:
                if f"`{code}`" not in described:
                    problems.append(f"{method} {path} {status}: {code} not described")
            if not any(action in described for action in ACTIONS):
                problems.append(f"{method} {path} {status}: no advice for the chatbot")
    # then
    assert problems == []


def test_the_hopeless_answers_of_the_contract_are_documented_where_they_happen() -> None:
    # given: the error codes per operation (docs/integrator-guide.md, Errors and what to do)
    expected = {
        ("POST", "/api/v1/campaigns/{slug}/claims/"): {
            "409": {"limit_reached", "campaign_not_active"},
            "410": {"sold_out"},
            "422": {"idempotency_key_reused"},
            "429": {"overloaded"},
        },
        ("POST", "/api/v1/orders/"): {
            "400": {"invalid"},
            "409": {"out_of_stock", "budget_exhausted", "campaign_not_active"},
            "410": {"sold_out"},
            "422": {"idempotency_key_reused"},
            "429": {"overloaded"},
        },
        ("POST", "/api/v1/orders/{order_id}/cancel/"): {"409": {"not_cancellable"}},
    }
    schema = fetch_schema()
    # when / then
    for (method, path), statuses in expected.items():
        responses = schema["paths"][path][method.lower()]["responses"]
        for status, codes in statuses.items():
            found = {e["error"] for e in examples_of(responses[status]["content"])}
            assert found == codes, f"{method} {path} {status}"


def test_every_example_is_valid_against_its_schema() -> None:
    # given
    schema = fetch_schema()
    components = as_json_schema(schema["components"])
    invalid = []
    # when
    for method, path, op in operations(schema):
        contents = [("request", op["requestBody"]["content"])] if "requestBody" in op else []
        contents += [(status, r.get("content", {})) for status, r in op["responses"].items()]
        for where, content in contents:
            for media in content.values():
                root = {"components": components, **as_json_schema(media["schema"])}
                if where == "request":  # a request may leave optional fields out
                    root = {"components": components, **media["schema"]}
                validator = jsonschema.Draft7Validator(
                    root, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
                )
                for name, example in media.get("examples", {}).items():
                    errors = [e.message for e in validator.iter_errors(example["value"])]
                    if errors:
                        invalid.append(f"{method} {path} {where} {name}: {errors[:2]}")
    # then
    assert invalid == []


def test_the_schema_points_nowhere_outside_the_repository() -> None:
    # given / when
    text = str(fetch_schema())
    # then
    assert "shared/docs" not in text
    assert not re.search(r"\.\./", text)
