"""Set-based writes for batches: one statement for many rows, not one per row (and, at the
end, the autovacuum settings of the tables those batches churn).

Django's `bulk_update` writes a `CASE WHEN id = … THEN …` per row and per field; building and
planning that cost the callbacks and payments workers a third of their CPU. `rows_update`
sends each field as one array and lets PostgreSQL join them:

    UPDATE t SET a = v.a, b = v.b FROM unnest(%s::bigint[], %s::int[], …) AS v(id, a, b)
    WHERE t.id = v.id

`rows_insert` does the same for new rows (`INSERT … SELECT * FROM unnest(…)`), without the
model object per row and the compiler per call that `bulk_create` costs.

Both send the arrays in PostgreSQL's binary format (`%b`): the text form quotes and escapes
every element in Python, a regular-expression substitution per quote, and a callback row's
payload is an order document full of quotes. Ten callback rows: 90 µs to dump in binary,
510 in text (`python -m bench.array_dump`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import (
    DEFAULT_DB_ALIAS,
    OperationalError,
    connection,
    connections,
    migrations,
    models,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.base import DEFERRED
from django.db.models.expressions import Col
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import Loader

M = TypeVar("M", bound=models.Model)
T = TypeVar("T")


def prepared_rows(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run a statement that every request runs as a prepared statement and return its rows.

    psycopg's own cursor on Django's connection, not Django's client-side binding one: the
    statement is prepared once per connection, and PostgreSQL then neither parses nor plans
    it again (for a one-row lookup that is most of its cost), and Python skips the ORM's
    query compiler. Same connection, so it takes part in the caller's transaction; the SQL
    uses %s placeholders. Not for statements whose text varies: each text is prepared anew.
    """
    with _prepared(sql, params) as cursor:
        # Whether it returned rows, from the result: `cursor.description` would build a
        # Column for each of its columns to say so.
        result = cursor.pgresult
        return cursor.fetchall() if result is not None and result.nfields else []


# --- Hand-written statements --------------------------------------------------------------
# Each app keeps its hand-written SQL in its own sql.py, written with `statement`: a template
# that names every table and column through the models' metadata, so a statement cannot drift
# from the models (tests/test_sql_columns.py checks every one against them and against the
# database). Built once, at import: a statement is one fixed text per process, prepared once
# per connection.


class UnknownColumn(LookupError):
    """A template names a field its model does not have (or one with no column)."""


class _Names:
    """One model in a template: `{o}` is its table, `{o.status}` the column of its field (by
    name or attname) `status`, `{o:*}` all its columns and `{o:x.*}` the same after `x.`: the
    select list of a read, never `*`. A migration adds a column before the code that knows
    it serves (docs/operations.md, "Changing the schema"); a read that names its columns
    neither hands the running code a column its model lacks nor changes its result type
    under a prepared statement."""

    def __init__(self, model: Any, meta: Any, used: set[tuple[str, str]]) -> None:
        self._model, self._meta, self._used = model, meta, used

    def _column(self, field: Any) -> str:
        self._used.add((self._meta.db_table, field.column))
        return field.column

    def __getattr__(self, name: str) -> str:
        for field in self._meta.concrete_fields:
            if name in (field.name, field.attname):
                return self._column(field)
        raise UnknownColumn(f"{self._meta.db_table} has no column for {name!r}")

    def __format__(self, spec: str) -> str:
        if not spec:
            self._used.add((self._meta.db_table, ""))
            return self._meta.db_table
        if spec == "*" or spec.endswith(".*"):  # whatever columns the model has
            self._used.add((self._meta.db_table, "*"))
            return ", ".join(spec[:-1] + f.column for f in self._meta.concrete_fields)
        raise ValueError(f"unknown format {spec!r} for a model in a statement")


@dataclass(frozen=True)
class Statement:
    """A statement as written (template, names) and as built (text, the columns it names:
    (table, column) pairs, column "" for the table itself and "*" for all its columns)."""

    module: str
    template: str
    names: dict[str, Any]
    text: str
    used: frozenset[tuple[str, str]]


STATEMENTS: list[Statement] = []  # every statement built, for tests/test_sql_columns.py


def render(
    template: str, names: dict[str, Any], *, meta: Callable[[Any], Any] | None = None
) -> tuple[str, frozenset[tuple[str, str]]]:
    """The template's text with each model among `names` (`{o}`, `{o.field}`, `{o:*}`) put
    as its table and columns, read from `meta(model)` (default: the model's _meta), and any
    other name put as the string it is; and the (table, column) pairs it named. Raises
    UnknownColumn for a field the model lacks."""
    used: set[tuple[str, str]] = set()
    read = meta or (lambda model: model._meta)
    values = {
        key: value if isinstance(value, str) else _Names(value, read(value), used)
        for key, value in names.items()
    }
    return template.format(**values), frozenset(used)


def matching(name: str, lookups: dict[str, object]) -> str:
    """A template's condition for a filter of constants, `field=value` and
    `field__isnull=bool` (what an ORM `.filter(**lookups)` means), on the model named `name`
    in the template: so one definition serves the ORM and a hand-written statement. The
    values are the code's own constants, written into the text (a partial index whose
    predicate names them stays usable by a prepared statement's generic plan)."""
    terms = []
    for lookup, value in lookups.items():
        field, _, op = lookup.partition("__")
        column = "{%s.%s}" % (name, field)  # noqa: UP031 (a template's placeholder, braces and all)
        if op == "isnull":
            terms.append(f"{column} IS {'' if value else 'NOT '}NULL")
        elif not op and isinstance(value, str):
            literal = value.replace("'", "''").replace("{", "{{").replace("}", "}}")
            terms.append(f"{column} = '{literal}'")
        else:
            raise ValueError(f"matching() knows field=str and field__isnull, not {lookup!r}")
    return " AND ".join(terms)


def statement(template: str, **names: Any) -> str:
    """A hand-written statement, built from `template` and the models in `names` (see
    `render`), and recorded in STATEMENTS. Call it once, at import."""
    text, used = render(template, names)
    module = sys._getframe(1).f_globals.get("__name__", "")  # the caller: its app
    STATEMENTS.append(Statement(module, template, dict(names), text, used))
    return text


def new_object(model: type[M], **values: Any) -> M:
    """`model(**values)`, a new unsaved object, for the hot paths: the values go by position,
    and each field not among them takes its default, as the keyword form does. The keyword
    form matches each keyword against every field in Python: 14 µs for an order against 4.5
    by position (docs/performance.md, "Counting instructions"). `values` are by attname
    (`client_id`, not `client`); an unknown one is an error."""
    args = [
        values.pop(attname) if attname in values else field.get_default()
        for attname, field in _fields_in_order(model)
    ]
    if values:
        raise TypeError(f"{model.__name__} has no field {', '.join(sorted(values))}")
    return model(*args)


@cache
def _fields_in_order(model: type[models.Model]) -> tuple[tuple[str, Any], ...]:
    return tuple((f.attname, f) for f in model._meta.concrete_fields)


def prepared_objects(model: type[M], sql: str, params: Sequence[Any]) -> list[M]:
    """`model.objects.raw(sql, params)` for the workers' batch reads, prepared as in
    `prepared_rows`, with less Python per call: how the columns map onto the model's fields,
    and which converters they need, is worked out once per statement text, where RawQuerySet
    works it out again on every call (with the objects it builds, a tenth of the payments
    worker's CPU). Columns the statement leaves out are deferred, as with raw(); a column
    that is not one of the model's fields is an error."""
    with _prepared(sql, params) as cursor:
        names = _column_names(cursor)
        rows = cursor.fetchall()
    plan = _row_plan(model, names)
    db = connections[DEFAULT_DB_ALIAS]  # once, not a look-up per value through `connection`
    alias = db.alias
    objects = []
    for row in rows:
        values = [DEFERRED if i is None else row[i] for i in plan.positions]
        for index, converters in plan.converters:
            for convert in converters:
                values[index] = convert(values[index], plan.columns[index], db)
        objects.append(model.from_db(alias, plan.attnames, values))
    return objects


def _column_names(cursor: psycopg.Cursor[Any]) -> tuple[str, ...]:
    """The result's column names, from the result itself: `cursor.description` builds a
    Column (with its type looked up) for every column of every execution, a quarter of a
    one-row read's Python."""
    result = cursor.pgresult
    if result is None:
        return ()
    return tuple((result.fname(i) or b"").decode() for i in range(result.nfields))


@dataclass(frozen=True)
class _RowPlan:
    positions: tuple[int | None, ...]  # per concrete field, its column in the row, or None
    attnames: tuple[str, ...]
    columns: tuple[Col, ...]
    converters: tuple[tuple[int, tuple[Callable[..., Any], ...]], ...]  # (field index, …)


@cache
def _row_plan(model: type[models.Model], names: tuple[str, ...]) -> _RowPlan:
    fields = model._meta.concrete_fields
    known = {f.column for f in fields}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"{model.__name__} has no field for column(s) {', '.join(unknown)}")
    where = {name: i for i, name in enumerate(names)}
    columns = tuple(f.get_col(model._meta.db_table) for f in fields)
    converters = []
    for index, (field, column) in enumerate(zip(fields, columns, strict=True)):
        found = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if found and field.column in where:
            converters.append((index, tuple(found)))
    return _RowPlan(
        positions=tuple(where.get(f.column) for f in fields),
        attnames=tuple(f.attname for f in fields),
        columns=columns,
        converters=tuple(converters),
    )


def prepared_count(sql: str, params: Sequence[Any]) -> int:
    """`prepared_rows` for a statement that returns no rows: how many rows it changed."""
    with _prepared(sql, params) as cursor:
        return cursor.rowcount


@contextmanager
def _prepared(sql: str, params: Sequence[Any]) -> Iterator[psycopg.Cursor[Any]]:
    db = connections[DEFAULT_DB_ALIAS]  # once: each use of `connection` looks it up again
    db.ensure_connection()
    cursor = _statement_cursor(db, sql)
    logged = db.queries_logged  # DEBUG, or a test's CaptureQueriesContext
    started = time.monotonic() if logged else 0.0
    with db.wrap_database_errors:
        try:
            cursor.execute(sql, params, prepare=True)
        except psycopg.errors.FeatureNotSupported as exc:
            if not _plan_changed(exc):
                raise
            _replan(cursor, exc)
            cursor.execute(sql, params, prepare=True)
        if logged:  # listed with the ORM's statements, as Django's debug cursor lists them
            took = time.monotonic() - started
            db.queries_log.append({"sql": sql, "time": f"{took:.3f}"})
        yield cursor


def _statement_cursor(db: BaseDatabaseWrapper, sql: str) -> psycopg.Cursor[Any]:
    """The connection's own cursor for this statement, made on first use and kept.

    A new psycopg cursor per call cost a prepared statement about 95,000 instructions in
    Python (docs/performance.md, "Counting instructions"): the cursor itself and its
    closing, and a new Transformer that looks up the dumper of every parameter's type again.
    psycopg keeps a cursor's Transformer while the same query object comes back, and each
    statement here is one string object for the life of the process. The cursors live on
    Django's connection wrapper (one per thread) beside the connection they were made on, and
    are dropped with it when Django opens a new one. Each caller reads its whole result
    before returning, so a cursor is never in use twice; it holds its last result until the
    statement runs again."""
    raw = db.connection
    held = db.__dict__.get("_statement_cursors")
    if held is None or held[0] is not raw:
        held = db._statement_cursors = (raw, {})
    cursor = held[1].get(sql)
    if cursor is None or cursor.closed:
        cursor = held[1][sql] = psycopg.Cursor(raw)
    return cursor


class PlanChanged(OperationalError):
    """A prepared statement met a table whose columns changed under it (a migration ran),
    inside a transaction, which PostgreSQL has aborted: run the transaction again. Its
    rollback has dropped the connection's prepared statements (psycopg clears them on every
    rollback), so the next run prepares afresh. An OperationalError: nothing an order or a
    request did, so no batch blames an order for it (orders.services.holds) and the API
    answers it as the database being unavailable for a moment (infra.api)."""


# PostgreSQL keeps the plan of a prepared statement and plans it again when a table it reads
# changed; if the new plan's rows have other columns or types (a `*` over a table that gained
# a column, a column whose type changed), it refuses with this error rather than answer rows
# the client does not expect, and goes on refusing for as long as the statement exists. psycopg
# does not drop a statement that failed once prepared, so without this the connection would
# fail that statement until it closes.
_PLAN_CHANGED_STATE = "0A000"  # feature_not_supported
_PLAN_CHANGED_MESSAGE = "cached plan must not change result type"


def _plan_changed(exc: psycopg.Error) -> bool:
    return exc.sqlstate == _PLAN_CHANGED_STATE and exc.diag.message_primary == _PLAN_CHANGED_MESSAGE


def _replan(cursor: psycopg.Cursor[Any], exc: psycopg.Error) -> None:
    """Drop the connection's prepared statements, so the next execution prepares again; or,
    inside a transaction (aborted by the error), raise PlanChanged."""
    if cursor.connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise PlanChanged(str(exc)) from exc
    # psycopg forgets every statement it prepared when it sees DEALLOCATE ALL run: all of them
    # are prepared again on next use, a handful once per schema change.
    cursor.execute("DEALLOCATE ALL")


def replanned(run: Callable[[], T]) -> T:
    """`run()`, and once more if a prepared statement's plan changed inside its transaction
    (PlanChanged): for a worker's batch, which is one transaction."""
    try:
        return run()
    except PlanChanged:
        return run()


# PostgreSQL's code for a statement cancelled by statement_timeout (query_canceled).
_CANCELLED_STATE = "57014"


def within(milliseconds: int, run: Callable[[], T]) -> T | None:
    """`run()` with each of its statements limited to `milliseconds` (PostgreSQL's
    statement_timeout), or None when one ran out of time: for a figure a page can do without
    or estimate, so that no page waits on a scan that grows with the table.

    The limit is set for run's own transaction (a savepoint inside the caller's), with
    `set_config(..., is_local)`, so it holds under a transaction pooler; it is put back after
    run (a savepoint's release would otherwise keep it until the caller's transaction ends),
    and a cancelled run's rollback puts it back by itself."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        before = cursor.fetchone()[0]
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('statement_timeout', %s, true)", [f"{milliseconds}ms"]
                )
            result = run()
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [before])
            return result
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != _CANCELLED_STATE:
            raise
        return None


def rows_update(model: type[models.Model], objs: Sequence[models.Model], fields: list[str]) -> int:
    """Write `fields` of every object in `objs` (by primary key) in one UPDATE. Returns the
    number of rows updated. The caller holds the rows' locks, as with bulk_update."""
    if not objs:
        return 0
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    pk = meta.pk
    db = connections[DEFAULT_DB_ALIAS]  # once, not a look-up per value through `connection`
    arrays = [[pk.get_db_prep_value(o.pk, db) for o in objs]]
    arrays += [[f.get_db_prep_value(getattr(o, f.attname), db) for o in objs] for f in columns]
    quote = db.ops.quote_name
    names = ["id", *(f"v{i}" for i in range(len(columns)))]
    types = [pk.rel_db_type(db), *(f.db_type(db) for f in columns)]
    # Identifiers come from the model's metadata, quoted; every value is a parameter.
    sql = (
        f"UPDATE {quote(meta.db_table)} AS t SET "  # noqa: S608
        + ", ".join(f"{quote(f.column)} = v.v{i}" for i, f in enumerate(columns))
        + " FROM unnest("
        + ", ".join(f"%b::{t}[]" for t in types)
        + f") AS v({', '.join(names)}) WHERE t.{quote(pk.column)} = v.id"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, arrays)
        return cursor.rowcount


def rows_insert(
    model: type[models.Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]
) -> int:
    """Insert `rows` (each a value per name in `fields`, in that order) in one statement and
    return how many were inserted. What bulk_create writes, without a model object per row
    nor the ORM's compiler per call: the text depends only on the model and the fields, so it
    is prepared once per connection. Values go as they are (ints, strings, aware datetimes,
    None), but JSON fields' Python values, which are encoded as the ORM does. Fields left out
    take no default: name every column that has no database default. Nothing is returned of
    the rows (no primary keys)."""
    if not rows:
        return 0
    arrays = [[row[i] for row in rows] for i in range(len(fields))]
    db = connections[DEFAULT_DB_ALIAS]  # once, not a look-up per value through `connection`
    for i, name in enumerate(fields):  # JSON needs psycopg's wrapper; the rest it adapts itself
        field = model._meta.get_field(name)
        if isinstance(field, models.JSONField):
            arrays[i] = [field.get_db_prep_save(v, db) for v in arrays[i]]
    with db.cursor() as cursor:
        cursor.execute(_insert_sql(model, tuple(fields)), arrays)
        return cursor.rowcount


@cache
def _insert_sql(model: type[models.Model], fields: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    columns = [model._meta.get_field(name) for name in fields]
    # Identifiers come from the model's metadata, quoted; every value is a parameter.
    return (
        f"INSERT INTO {quote(model._meta.db_table)} "  # noqa: S608
        f"({', '.join(quote(f.column) for f in columns)}) SELECT * FROM unnest("
        + ", ".join(f"%b::{f.db_type(connection)}[]" for f in columns)
        + ")"
    )


# --- Reading timestamps ------------------------------------------------------------------------
# Django reads every timestamptz through its own Python subclass of psycopg's Python loader
# (to stamp Django's time zone on it): 2.7 us a value against 0.15 for psycopg's C loader,
# and every row the workers lock carries several (4-6 % of the payments and reservations
# workers' samples went to parsing them). Where Django's zone is UTC, the session's is UTC
# too (Django sets it on connect) and the C loader stamps the very same datetime.timezone.utc,
# so the values are identical; `timezone` is the attribute Django compares to decide whether
# a cursor needs its own loader.
_C_TIMESTAMPTZ_LOADER = psycopg.adapters.get_loader(
    psycopg.adapters.types["timestamptz"].oid, psycopg.pq.Format.TEXT
)


class _UtcTimestamptzLoader(Loader):
    """psycopg's C loader (which cannot be subclassed) behind the attribute Django reads."""

    timezone = UTC

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        self._c = _C_TIMESTAMPTZ_LOADER(oid, context)
        # The C method itself, which psycopg looks up once per column of a result: no Python
        # frame per value.
        self.load = self._c.load  # type: ignore[method-assign]

    def load(self, data: Buffer) -> datetime:  # the same, for a caller that goes by the class
        return self._c.load(data)


def read_timestamps_in_c(*, connection: BaseDatabaseWrapper, **_: Any) -> None:
    """For the connection_created signal: psycopg's C loader for timestamptz, when it gives
    exactly what Django's would (PostgreSQL, USE_TZ, the connection's zone UTC)."""
    if (
        connection.vendor == "postgresql"
        and settings.USE_TZ
        and connection.timezone == UTC
        and connection.connection.info.parameter_status("TimeZone") == "UTC"
    ):
        connection.connection.adapters.register_loader("timestamptz", _UtcTimestamptzLoader)


def session_settings_check(*, connection: BaseDatabaseWrapper, **_: Any) -> None:
    """For the connection_created signal, behind a transaction pooler (DB_POOLER): the server
    session has the lock_timeout this process expects (DB_LOCK_TIMEOUT_MS). The app sends no
    session settings there (a SET would stay on a server connection other clients get next),
    so the pooler sets it: the web's database alias runs `SET lock_timeout` when it opens a
    server connection (docs/pgbouncer.md). A web tier pointed at the workers' alias would
    wait on locks for ever, a worker pointed at the web's would fail its batches: refused,
    and the connection closed, so the next request checks again. One query per connection."""
    if connection.vendor != "postgresql" or not settings.DB_POOLER:
        return
    with connection.connection.cursor() as cursor:
        cursor.execute("SELECT setting FROM pg_settings WHERE name = 'lock_timeout'")
        (found,) = cursor.fetchone() or ("",)
    if found != str(settings.DB_LOCK_TIMEOUT_MS):
        connection.close()
        raise ImproperlyConfigured(
            f"lock_timeout is {found} ms through the pooler, DB_LOCK_TIMEOUT_MS is "
            f"{settings.DB_LOCK_TIMEOUT_MS}: point DATABASE_URL at the pooler's database alias "
            "that sets it (docs/pgbouncer.md)"
        )


# Autovacuum after this many changed rows of a table whose rows churn (orders move through
# their statuses within seconds), whatever the table's size: about a minute of a campaign at
# 309 orders a second. Vacuuming sooner costs each run's index scan more often; later, every
# scan of a line's partial index walks more dead entries (orders.migrations.0007).
CHURN_ROWS = 20_000


def vacuumed_often(table: str) -> migrations.RunSQL:
    """A migration operation: `table` is vacuumed and analyzed after CHURN_ROWS changes."""
    settings = (
        f"autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = {CHURN_ROWS}, "
        f"autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = {CHURN_ROWS}"
    )
    names = (
        "autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, "
        "autovacuum_analyze_scale_factor, autovacuum_analyze_threshold"
    )
    return migrations.RunSQL(
        f"ALTER TABLE {table} SET ({settings})",
        f"ALTER TABLE {table} RESET ({names})",
    )


def vacuumed_unthrottled(table: str) -> migrations.RunSQL:
    """A migration operation: autovacuum runs on `table` without the cost-based pauses
    (autovacuum_vacuum_cost_delay = 0) that spread a vacuum out to spare the disk.

    A churning table's vacuum must finish before the next one is due: its run scans every
    index of the table, so throttled it takes longer as the table grows (0.15 s at the start
    of the 1.4-million-order soak, 2.8 s at 680,000 orders, mostly asleep), dead entries pile
    up meanwhile and every scan of a line's partial index walks them (docs/soak.md). The work
    is the same; only the sleeping goes. ALTER TABLE ... SET of an autovacuum parameter takes
    a lock that reads and writes do not wait for."""
    return migrations.RunSQL(
        f"ALTER TABLE {table} SET (autovacuum_vacuum_cost_delay = 0)",
        f"ALTER TABLE {table} RESET (autovacuum_vacuum_cost_delay)",
    )


def index_dropped(
    table: str,
    index: str,
    definition: str,
    *,
    state: Sequence[migrations.operations.base.Operation] = (),
) -> migrations.RunSQL:
    """A migration operation (in a migration with `atomic = False`): `index` on `table` is
    dropped CONCURRENTLY, so that neither the table's readers nor its writers wait. Migrating
    back builds it again from `definition` (the columns part of CREATE INDEX, as
    "(coupon_id)") plainly, as the other index migrations drop theirs: a rollback may run
    inside a transaction, where CONCURRENTLY cannot (tests/admin/test_roles.py migrates back
    past these). `state`: what Django's model state learns (an AlterField to
    db_index=False), as nothing in the database is left for it to do.

    The old code keeps serving meanwhile: an index nothing reads is only ever written."""
    return migrations.RunSQL(
        f"DROP INDEX CONCURRENTLY IF EXISTS {index}",
        f"CREATE INDEX IF NOT EXISTS {index} ON {table} {definition}",
        state_operations=list(state),
    )
