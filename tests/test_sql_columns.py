"""Every hand-written statement (each app's sql.py, built by infra.sql.statement) against the
models and the database: a model change that breaks a statement fails here, not in
production.

Three checks per statement: built again from the models, it names only their columns; its
template types no table or column by hand (those come from _meta, so they follow the models);
and PostgreSQL prepares it (parses it and resolves every name and type) against the test
database, which the migrations built. The last tests prove the checks bite: a column taken
out of its model, or renamed, or typed by hand, is reported.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps
from django.db import DatabaseError, connection, transaction

from infra.sql import STATEMENTS, Statement, UnknownColumn, render
from orders.models import Order

ROOT = Path(__file__).resolve().parent.parent
APPS = ("infra", "shop", "coupons", "orders", "backoffice")


def _statements() -> list[Statement]:
    for app in APPS:
        if (ROOT / app / "sql.py").exists():
            importlib.import_module(f"{app}.sql")
    return list(STATEMENTS)


def _label(statement: Statement) -> str:
    return f"{statement.module}: {' '.join(statement.text.split())[:80]}"


def problems(statement: Statement, *, meta: Callable[[Any], Any] | None = None) -> list[str]:
    """What is wrong with `statement` against the models (read through `meta`): a field a
    model lacks, or a table or column of a model typed into the template by hand."""
    found = []
    try:
        render(statement.template, statement.names, meta=meta)
    except UnknownColumn as exc:
        found.append(str(exc))
    found += [f"typed by hand: {word}" for word in typed_by_hand(statement)]
    return found


_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_PARAMETER = re.compile(r"%\(\w+\)s|%[sb%]")
_WORD = re.compile(r"[A-Za-z_]\w*")


def typed_by_hand(statement: Statement) -> list[str]:
    """Words of the template (outside its placeholders, string literals and parameters) that
    are a model's table, or a column of a model the statement names."""
    text = _PLACEHOLDER.sub(" ", statement.template)
    text = _PARAMETER.sub(" ", _LITERAL.sub(" ", text))
    models = [m for m in statement.names.values() if not isinstance(m, str)]
    tables = {m._meta.db_table for m in apps.get_models(include_auto_created=True)}
    columns = {f.column for m in models for f in m._meta.concrete_fields}
    return sorted({w for w in _WORD.findall(text) if w.lower() in tables | columns})


def _numbered(text: str) -> str:
    """The statement with its psycopg placeholders as PostgreSQL's $1, $2, … (a named one
    keeps its number), for PREPARE."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        if match.group() == "%%":
            return "%"
        key = match.group(1) or f"#{len(numbers)}"
        numbers.setdefault(key, len(numbers) + 1)
        return f"${numbers[key]}"

    return re.sub(r"%\((\w+)\)s|%[sb]|%%", number, text)


def prepare(text: str) -> None:
    """PostgreSQL parses and analyses the statement (every table, column and type resolved,
    nothing run); raises DatabaseError when it cannot."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"PREPARE sql_columns_check AS {_numbered(text)}")
        cursor.execute("DEALLOCATE sql_columns_check")


def test_every_app_statement_is_built_in_its_sql_module() -> None:
    # given / when
    statements = _statements()
    # then: each app's hand-written SQL is in its sql.py, and there is some
    assert {s.module for s in statements} >= {"shop.sql", "coupons.sql", "orders.sql"}
    assert all(s.module.endswith(".sql") for s in statements), {s.module for s in statements}


@pytest.mark.parametrize("statement", _statements(), ids=_label)
def test_every_statement_names_only_the_models_tables_and_columns(statement: Statement) -> None:
    # given / when
    found = problems(statement)
    # then
    assert found == []
    assert render(statement.template, statement.names)[0] == statement.text


@pytest.mark.django_db
def test_every_statement_prepares_against_the_database() -> None:
    # given
    failed = []
    # when
    for statement in _statements():
        try:
            prepare(statement.text)
        except DatabaseError as exc:
            failed.append(f"{_label(statement)}\n  {exc}")
    # then
    assert failed == []


# --- The checks bite -------------------------------------------------------------------------


def _without(table: str, column: str) -> Callable[[Any], Any]:
    """A `meta` for render(): the models as they are, but `column` gone from `table`'s."""

    def meta(model: Any) -> Any:
        fields = [
            f
            for f in model._meta.concrete_fields
            if (model._meta.db_table, f.column) != (table, column)
        ]
        return SimpleNamespace(db_table=model._meta.db_table, concrete_fields=fields)

    return meta


def _renamed(table: str, column: str, new: str) -> Callable[[Any], Any]:
    """A `meta` for render(): `column` of `table` renamed `new` (db_column changed)."""

    def meta(model: Any) -> Any:
        fields = [
            SimpleNamespace(name=f.name, attname=f.attname, column=new)
            if (model._meta.db_table, f.column) == (table, column)
            else f
            for f in model._meta.concrete_fields
        ]
        return SimpleNamespace(db_table=model._meta.db_table, concrete_fields=fields)

    return meta


def _columns_named() -> Iterator[tuple[Statement, str, str]]:
    for statement in _statements():
        for table, column in sorted(statement.used):
            if column not in ("", "*"):  # named one by one: `*` is whatever the model has
                yield statement, table, column


def test_removing_any_column_a_statement_names_from_its_model_is_reported() -> None:
    # given: every column every statement names, each taken out of its model in turn
    missed = []
    checked = 0
    # when
    for statement, table, column in _columns_named():
        checked += 1
        found = problems(statement, meta=_without(table, column))
        if not any(p.startswith(f"{table} has no column") for p in found):
            missed.append(f"{_label(statement)}: {table}.{column}")
    # then
    assert checked > 100  # the statements name their columns through the models
    assert missed == []


@pytest.mark.django_db
def test_a_statement_built_on_a_renamed_column_fails_against_the_database() -> None:
    # given: Order.reason's column renamed in the model only (no migration)
    table, column = Order._meta.db_table, Order._meta.get_field("reason").column
    renamed = _renamed(table, column, "reason_gone")
    statements = [s for s in _statements() if (table, column) in s.used]
    assert statements
    # when / then: every statement that names it is refused by PostgreSQL
    for statement in statements:
        text, _ = render(statement.template, statement.names, meta=renamed)
        assert "reason_gone" in text
        with pytest.raises(DatabaseError, match="reason_gone"):
            prepare(text)


def test_a_column_typed_by_hand_is_reported() -> None:
    # given: a template that types a column, and one that types a table, beside the model's
    by_hand = Statement(
        "tests", "UPDATE {O} SET status = %s WHERE {O.id} = %s", {"O": Order}, "", frozenset()
    )
    table = Statement(
        "tests", "SELECT {O.id} FROM orders_order WHERE {O.id} = %s", {"O": Order}, "", frozenset()
    )
    # when / then
    assert problems(by_hand) == ["typed by hand: status"]
    assert problems(table) == ["typed by hand: orders_order"]


# --- No statement outside the sql modules ------------------------------------------------------


def _product_modules() -> Iterator[Path]:
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "migrations" in parts or path.name == "sql.py":
                continue
            yield path


def test_no_product_module_types_a_table_name_outside_its_apps_sql_module() -> None:
    # given
    tables = {m._meta.db_table for m in apps.get_models()}
    pattern = re.compile(r"\b(" + "|".join(sorted(tables)) + r")\b")
    found = []
    # when: every string in the code (docstrings too: they would show a stale statement)
    for path in _product_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for hit in pattern.findall(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {hit}")
    # then
    assert found == []
