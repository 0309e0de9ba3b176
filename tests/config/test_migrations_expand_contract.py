"""Our migrations keep the expand/contract rule (docs/operations.md, "Changing the schema"):
`migrate` runs while the previous release still serves, so a migration may only add what the
running code can ignore. Walks every operation of every migration of our apps; a migration
that breaks the rule fails unless it is listed below."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.db import migrations, models
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState
from django.db.models import NOT_PROVIDED, Field

# Our apps, those in this repository: their migrations are ours to keep to the rule
# (third-party apps' are not, even when installed in a virtualenv inside the checkout, as
# `make` puts it in .venv/).
APPS = {
    app.label
    for app in django_apps.get_app_configs()
    if Path(app.path).resolve().is_relative_to(settings.BASE_DIR)
    and "site-packages" not in Path(app.path).parts
}

# Migrations the rule lets through, each with why. A contraction done right joins them in
# its own release, naming the earlier release that stopped using what it takes away; the
# two below broke the rule and stay as what not to do again.
ALLOWED = {
    # park_reason added NOT NULL with a Python default only: Django drops the database
    # default once the column is filled, so a running insert that does not name it fails.
    ("orders", "0002_parking_and_parked_payments"),
    # Dropped campaign.coupons_issued in the release that stopped reading it: processes of
    # the previous release read it until they were replaced (docs/operations.md).
    ("coupons", "0005_campaign_coupons_issued_drop"),
}

# Raw SQL that takes away or renames what running code may use.
_BREAKING_SQL = re.compile(r"\b(DROP\s+(COLUMN|TABLE)|RENAME\b|SET\s+NOT\s+NULL)", re.IGNORECASE)


Operation = migrations.operations.base.Operation


# Operations that take away or rename what the running code reads.
_TAKES_AWAY = (
    migrations.RemoveField,
    migrations.DeleteModel,
    migrations.RenameField,
    migrations.RenameModel,
)


def breaks(operation: Operation, *, app: str, before: ProjectState, new_models: set[str]) -> str:
    """Why `operation` of `app`, run on the schema `before`, would break the release still
    serving; empty when it would not. `new_models`: the tables its migration created (no
    running code reads them yet)."""
    if isinstance(operation, _TAKES_AWAY):
        return f"{type(operation).__name__}: drop only in the release after the last reader"
    if isinstance(operation, migrations.AddField):
        valueless = operation.model_name_lower not in new_models and _needs_value(operation.field)
        return f"AddField {operation.name}: NOT NULL without db_default" if valueless else ""
    if isinstance(operation, migrations.AlterField):
        old = before.models[app, operation.model_name_lower].fields[operation.name]
        return _alter_breaks(operation, old)
    if isinstance(operation, migrations.RunSQL):
        sql = operation.sql if isinstance(operation.sql, str) else " ".join(map(str, operation.sql))
        found = _BREAKING_SQL.search(sql)
        return f"RunSQL: {found.group(0)}" if found else ""
    return ""


def _alter_breaks(operation: migrations.AlterField, old: Field) -> str:
    new = operation.field
    if (old.db_column or operation.name) != (new.db_column or operation.name):
        return f"AlterField {operation.name}: renames its column"
    if old.null and not new.null:
        return f"AlterField {operation.name}: made NOT NULL"
    return ""


def _needs_value(field: Field) -> bool:
    """A column that old code's inserts, which do not name it, would leave without a value."""
    return not field.many_to_many and not field.null and field.db_default is NOT_PROVIDED


def broken_rules(app: str, migration: Migration, state: ProjectState) -> list[str]:
    """What each operation of `migration`, run on `state` (moved forward as they run),
    breaks."""
    found = []
    new_models: set[str] = set()
    for operation in migration.operations:
        if isinstance(operation, migrations.CreateModel):
            new_models.add(operation.name_lower)
        reason = breaks(operation, app=app, before=state, new_models=new_models)
        if reason:
            found.append(f"{app}.{migration.name}: {reason}")
        operation.state_forwards(app, state)
    return found


def our_migrations() -> list[tuple[str, Migration, ProjectState]]:
    """Each migration of our apps, with the schema it runs on."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return [
        (app, migration, loader.project_state((app, name), at_end=False))
        for (app, name), migration in sorted(loader.disk_migrations.items())
        if app in APPS
    ]


def test_every_migration_keeps_to_expand_contract() -> None:
    assert {"coupons", "orders", "shop"} <= APPS
    broken = [
        reason
        for app, migration, state in our_migrations()
        if (app, migration.name) not in ALLOWED
        for reason in broken_rules(app, migration, state)
    ]
    assert broken == []


def test_every_listed_migration_is_one_the_walk_catches() -> None:
    # each entry of ALLOWED is caught by the walk: the check sees such a migration, and the
    # list holds no stale name
    caught = {
        (app, migration.name)
        for app, migration, state in our_migrations()
        if broken_rules(app, migration, state)
    }
    assert caught == ALLOWED


@pytest.mark.parametrize(
    ("operation", "broken"),
    [
        (migrations.AddField("order", "note", models.TextField(default="")), True),
        (migrations.AddField("order", "note", models.TextField(db_default="")), False),
        (migrations.AddField("order", "note", models.TextField(null=True)), False),
        (migrations.AlterField("order", "parked_at", models.DateTimeField()), True),
        (
            migrations.AlterField(
                "order", "customer_id", models.CharField(max_length=64, db_column="shopper")
            ),
            True,
        ),
        (migrations.AlterField("order", "park_reason", models.TextField(blank=True)), False),
        (migrations.RemoveField("order", "park_reason"), True),
        (migrations.RenameField("order", "park_reason", "parked_because"), True),
        (migrations.RenameModel("order", "purchase"), True),
        (migrations.DeleteModel("refund"), True),
        (migrations.RunSQL("ALTER TABLE orders_order DROP COLUMN park_reason"), True),
        (migrations.RunSQL("ALTER TABLE orders_order ALTER reason SET NOT NULL"), True),
        (migrations.RunSQL("ALTER TABLE orders_order SET (fillfactor = 90)"), False),
    ],
)
def test_a_new_migration_that_breaks_it_fails(operation: Operation, broken: bool) -> None:
    # given: a migration of orders after its latest one
    app, _, state = _latest("orders")
    migration = Migration("9999_new", app)
    migration.operations = [operation]
    # when / then
    assert bool(broken_rules(app, migration, state)) == broken


def _latest(app: str) -> tuple[str, Migration, ProjectState]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    (leaf,) = loader.graph.leaf_nodes(app)
    return app, loader.disk_migrations[leaf], loader.project_state(leaf)
