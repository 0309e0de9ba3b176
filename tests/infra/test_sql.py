"""infra.sql: rows_update (many rows, each with its own values, in one statement) and
prepared_rows (a hot statement prepared once per connection), and the ORM's binding settings."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import (
    DEFAULT_DB_ALIAS,
    DataError,
    IntegrityError,
    connection,
    connections,
    transaction,
)
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.settings.base import database_settings
from infra.sql import (
    CHURN_ROWS,
    PlanChanged,
    _statement_cursor,  # its keeping is what is tested
    new_object,
    prepared_count,
    prepared_objects,
    prepared_rows,
    replanned,
    rows_insert,
    rows_update,
    within,
)
from orders.models import CallbackDelivery, Order, OrderEvent, OrderLine
from orders.selectors import order_by_key, orders_for_update
from tests.conftest import database_url_of_tests
from tests.factories.orders import place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db


def test_each_row_gets_its_own_values_in_one_statement(chatbot) -> None:
    # given: three deliveries
    order = place(chatbot, "c-1", [(ProductFactory(), 1)])
    rows = [
        CallbackDelivery.objects.create(
            order=order, url="https://x.example/", order_status=s, payload={}
        )
        for s in ("reserved", "paid", "refunded")
    ]
    now = timezone.now()
    for i, row in enumerate(rows):
        row.attempts = i + 1
        row.next_attempt_at = now + timedelta(seconds=i)
        row.last_error = "" if i else "HTTP 502"
        row.delivered_at = None if i < 2 else now
    untouched = CallbackDelivery.objects.create(
        order=order, url="https://x.example/", order_status="other", payload={}
    )
    # when
    with CaptureQueriesContext(connection) as queries:
        updated = rows_update(
            CallbackDelivery, rows, ["attempts", "next_attempt_at", "last_error", "delivered_at"]
        )
    # then
    assert updated == 3
    assert len(queries) == 1
    got = {
        d.pk: (d.attempts, d.next_attempt_at, d.last_error, d.delivered_at)
        for d in CallbackDelivery.objects.all()
    }
    for i, row in enumerate(rows):
        assert got[row.pk] == (i + 1, now + timedelta(seconds=i), row.last_error, row.delivered_at)
    assert got[untouched.pk][0] == 0


def test_nothing_to_write_sends_nothing() -> None:
    with CaptureQueriesContext(connection) as queries:
        assert rows_update(CallbackDelivery, [], ["attempts"]) == 0
    assert len(queries) == 0


def test_inserted_rows_get_their_own_values_in_one_statement(chatbot) -> None:
    # given: two orders, and rows for them with text, JSON, times, a number and a null
    first = place(chatbot, "c-1", [(ProductFactory(), 1)])
    second = place(chatbot, "c-2", [(ProductFactory(), 1)])
    now = timezone.now()
    later = now + timedelta(seconds=5)
    fields = (
        "order", "url", "order_status", "payload", "state", "attempts", "next_attempt_at",
        "last_error", "delivered_at", "created_at", "updated_at",
    )  # fmt: skip
    rows = [
        (first.pk, "https://a.example/", "reserved", {"s": "it's"}, "pending", 0, now, "", None,
         now, now),
        (second.pk, "https://b.example/", "paid", {"list": [1, 2]}, "failed", 3, later, "502",
         later, now, later),
    ]  # fmt: skip
    # when
    with CaptureQueriesContext(connection) as queries:
        inserted = rows_insert(CallbackDelivery, fields, rows)
    # then: one statement, each row as given
    assert inserted == 2
    assert len(queries) == 1
    got = [
        tuple(getattr(d, "order_id" if f == "order" else f) for f in fields)
        for d in CallbackDelivery.objects.order_by("id")
    ]
    assert got == rows


def test_columns_that_are_null_or_empty_in_every_row_are_written_as_such(chatbot) -> None:
    # given: rows whose nullable time is None and whose text is empty in each row, and a
    # text that needs quoting in PostgreSQL's text form of an array (the arrays go binary)
    order = place(chatbot, "c-1", [(ProductFactory(), 1)])
    now = timezone.now()
    fields = (
        "order", "url", "order_status", "payload", "state", "attempts", "next_attempt_at",
        "last_error", "delivered_at", "created_at", "updated_at",
    )  # fmt: skip
    rows = [
        (order.pk, 'https://a.example/{"x"}\\', "reserved", {"q": '"\\'}, "pending", 0, now, "",
         None, now, now)
        for _ in range(2)
    ]  # fmt: skip
    # when
    assert rows_insert(CallbackDelivery, fields, rows) == 2
    deliveries = list(CallbackDelivery.objects.order_by("id"))
    for d in deliveries:
        d.delivered_at = None
        d.last_error = ""
    assert rows_update(CallbackDelivery, deliveries, ["delivered_at", "last_error"]) == 2
    # then
    got = [
        tuple(getattr(d, "order_id" if f == "order" else f) for f in fields)
        for d in CallbackDelivery.objects.order_by("id")
    ]
    assert got == rows


def test_an_insert_that_breaks_a_constraint_inserts_nothing(chatbot) -> None:
    # given: a good event beside one without its source
    order = place(chatbot, "c-1", [(ProductFactory(), 1)])
    before = OrderEvent.objects.count()
    now = timezone.now()
    fields = ("order", "source", "target", "actor", "data", "created_at")
    rows = [
        (order.pk, "received", "reserved", "t", {}, now),
        (order.pk, None, "reserved", "t", {}, now),
    ]
    # when / then: the statement fails as a whole
    with pytest.raises(IntegrityError, match="null value"), transaction.atomic():
        rows_insert(OrderEvent, fields, rows)
    assert OrderEvent.objects.count() == before


def test_a_prepared_statement_is_prepared_once_and_answers_each_time() -> None:
    # given
    sql = "SELECT %s::int + 1"
    # when: more runs than psycopg's prepare threshold would need
    answers = [prepared_rows(sql, [i]) for i in range(3)]
    # then: the rows, and PostgreSQL holds the statement prepared on this connection
    assert answers == [[(1,)], [(2,)], [(3,)]]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = %s",
            ["SELECT $1::int + 1"],
        )
        assert cursor.fetchone() == (1,)


@pytest.mark.django_db(transaction=True)  # closes its connection: no test transaction
def test_a_statement_keeps_its_cursor_on_its_connection_and_not_beyond() -> None:
    # given: two statements, each run twice
    one, two = "SELECT %s::int * 10", "SELECT %s::int * 100"
    assert [prepared_rows(one, [1]), prepared_rows(one, [2])] == [[(10,)], [(20,)]]
    kept = _statement_cursor(connections[DEFAULT_DB_ALIAS], one)
    assert prepared_rows(two, [1]) == [(100,)]
    # then: the statement's cursor is kept and is its own, on this connection
    assert _statement_cursor(connections[DEFAULT_DB_ALIAS], one) is kept
    assert _statement_cursor(connections[DEFAULT_DB_ALIAS], two) is not kept
    assert kept.connection is connection.connection
    # when: Django opens a new connection (a broken or aged-out one is closed)
    connection.close()
    # then: the statement runs on the new one with a new cursor, and answers
    assert prepared_rows(one, [3]) == [(30,)]
    assert _statement_cursor(connections[DEFAULT_DB_ALIAS], one) is not kept
    assert _statement_cursor(connections[DEFAULT_DB_ALIAS], one).connection is connection.connection


def test_a_prepared_statement_is_listed_with_the_orms_statements() -> None:
    # a test counting round trips with CaptureQueriesContext (and DEBUG's connection.queries)
    # sees the prepared statements too, not only the ORM's
    with CaptureQueriesContext(connection) as queries:
        prepared_rows("SELECT %s::int - 1", [5])
        list(Order.objects.filter(pk=-1))
    assert [q["sql"].split()[0] for q in queries] == ["SELECT", "SELECT"]
    assert queries[0]["sql"] == "SELECT %s::int - 1"
    # and outside them nothing is kept
    before = len(connection.queries_log)
    prepared_rows("SELECT %s::int - 1", [5])
    assert len(connection.queries_log) == before


@pytest.mark.django_db(transaction=True)
def test_threads_running_one_statement_at_once_each_get_their_own_answers() -> None:
    # given: a statement every thread runs, each with its own values, all at once
    sql = "SELECT %s::int, pg_backend_pid()"
    threads, runs = 8, 150
    start = threading.Barrier(threads)

    def run(t: int) -> tuple[list[bool], int]:
        try:
            start.wait()
            answers = [prepared_rows(sql, [t * 1000 + i])[0] for i in range(runs)]
            pids = {pid for _, pid in answers}
            return [v == t * 1000 + i for i, (v, _) in enumerate(answers)], pids.pop()
        finally:
            connection.close()

    # when
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(run, range(threads)))
    # then: every answer is the thread's own, each thread ran on its own connection
    assert all(all(ok) for ok, _ in results)
    assert len({pid for _, pid in results}) == threads


def test_a_new_object_is_what_the_keyword_form_makes(chatbot) -> None:
    # given: the values intake gives an order, the rest left to the fields' defaults
    values = {
        "client_id": chatbot.pk,
        "customer_id": "c-1",
        "subtotal": 3000,
        "discount": 2500,
        "payable": 500,
        "idempotency_key": "k-1",
        "created_at": timezone.now(),
    }
    # when
    made, expected = new_object(Order, **values), Order(**values)
    # then: field by field the same (a default that is made anew each time, the order's
    # public id, is of the same kind), new and unsaved, and it saves as the keyword form does
    fields = [f.attname for f in Order._meta.concrete_fields if f.attname != "public_id"]
    assert [getattr(made, f) for f in fields] == [getattr(expected, f) for f in fields]
    assert made.public_id != expected.public_id
    assert type(made.public_id) is type(expected.public_id)
    assert made._state.adding
    assert made.pk is None
    made.save()
    line = new_object(OrderLine, order_id=made.pk, sku="S-1", quantity=2, unit_price=10)
    line.product = ProductFactory()
    line.save()
    assert Order.objects.get(pk=made.pk).lines.get().quantity == 2
    # and a name that is no field's attname is refused, as the keyword form refuses it
    with pytest.raises(TypeError, match="Order has no field client, nope"):
        new_object(Order, client=chatbot, nope=1)


def test_prepared_objects_are_what_raw_gives(chatbot) -> None:
    # given: deliveries with JSON, times, a null and text, read by the same statement
    order = place(chatbot, "c-1", [(ProductFactory(), 1)])
    for status, payload in (("reserved", {"list": [1, 2], "s": "it's"}), ("paid", {})):
        CallbackDelivery.objects.create(
            order=order, url="https://x.example/", order_status=status, payload=payload
        )
    sql = f"SELECT * FROM {CallbackDelivery._meta.db_table} WHERE order_id = ANY(%s) ORDER BY id"  # noqa: S608
    # when
    got = prepared_objects(CallbackDelivery, sql, [[order.pk]])
    # then: the same objects, field by field, saved rows (not new ones), on this database
    expected = list(CallbackDelivery.objects.raw(sql, [[order.pk]]))
    fields = [f.attname for f in CallbackDelivery._meta.concrete_fields]
    assert [[getattr(d, f) for f in fields] for d in got] == [
        [getattr(d, f) for f in fields] for d in expected
    ]
    assert got[0].payload == {"list": [1, 2], "s": "it's"}
    assert all(not d._state.adding and d._state.db == "default" for d in got)


def test_prepared_objects_defer_the_columns_left_out_and_refuse_strangers(chatbot) -> None:
    # given
    order = place(chatbot, "c-1", [(ProductFactory(), 1)])
    table = Order._meta.db_table
    # when: two columns only
    (got,) = prepared_objects(Order, f"SELECT id, status FROM {table} WHERE id = %s", [order.pk])  # noqa: S608
    # then: those are loaded, the rest deferred (read from the database when touched)
    assert got.get_deferred_fields() >= {"customer_id", "callback_url"}
    assert (got.pk, got.status) == (order.pk, order.status)
    assert got.customer_id == order.customer_id
    # and a column that is no field of the model is an error, not silently dropped
    with pytest.raises(ValueError, match="no field for column"):
        prepared_objects(Order, f"SELECT id, 1 AS extra FROM {table} WHERE id = %s", [order.pk])  # noqa: S608


def test_a_prepared_statement_takes_part_in_the_callers_transaction(chatbot) -> None:
    # given: an order changed by a prepared statement inside a transaction that rolls back
    order = place(chatbot, "c-1", [(ProductFactory(), 1)])
    table = Order._meta.db_table
    update = f"UPDATE {table} SET customer_id = 'someone-else' WHERE id = %s RETURNING id"  # noqa: S608

    def change_then_roll_back() -> None:
        with transaction.atomic():
            assert prepared_rows(update, [order.pk]) == [(order.pk,)]
            raise RuntimeError

    # when
    with pytest.raises(RuntimeError):
        change_then_roll_back()
    # then: the change went with the transaction
    order.refresh_from_db()
    assert order.customer_id == "c-1"


def test_a_prepared_statements_database_error_is_djangos() -> None:
    # an error in PostgreSQL surfaces as django.db's, as through the ORM, and the connection
    # stays usable
    with pytest.raises(DataError), transaction.atomic():
        prepared_rows("SELECT 1 / %s", [0])
    assert prepared_rows("SELECT 1 / %s", [1]) == [(1,)]


def test_a_prepared_statement_without_rows_answers_how_many_it_changed(chatbot) -> None:
    # given: two orders
    orders = [place(chatbot, f"c-{i}", [(ProductFactory(), 1)]) for i in range(2)]
    table = Order._meta.db_table
    update = f"UPDATE {table} SET reason = 'x' WHERE id = ANY(%s)"  # noqa: S608
    # when / then
    assert prepared_count(update, [[o.pk for o in orders]]) == 2
    assert prepared_count(update, [[-1]]) == 0
    assert set(Order.objects.values_list("reason", flat=True)) == {"x"}


def test_a_repeated_orm_statement_is_bound_server_side_and_prepared() -> None:
    # given: an ORM query whose text does not change with its values
    def lookup(pk: int) -> bool:
        return Order.objects.filter(pk=pk).exists()

    # when: it runs more often than the prepare threshold, with other values each time
    for pk in range(1, 8):
        lookup(pk)
    # then: PostgreSQL holds it prepared, its value a $n placeholder, not quoted into the text
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s",
            ['%FROM "orders_order" WHERE "orders_order"."id" = $_ LIMIT 1'],
        )
        assert len(cursor.fetchall()) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"prepare_threshold": 5, "server_side_binding": True}),
        ({"DB_PREPARED_STATEMENTS": "false"}, {"server_side_binding": True}),
        ({"DB_SERVER_SIDE_BINDING": "false"}, {"prepare_threshold": 5}),
    ],
)
def test_the_binding_and_preparing_switches(monkeypatch, env, expected) -> None:
    # given
    for name in (
        "DB_PREPARED_STATEMENTS",
        "DB_SERVER_SIDE_BINDING",
        "DB_LOCK_TIMEOUT_MS",
        "DB_POOLER",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # when
    options = database_settings({"NAME": "x"})["OPTIONS"]
    # then
    assert {k: v for k, v in options.items() if k != "options"} == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"server_side_binding": True}),
        # PgBouncer 1.22+ with max_prepared_statements keeps them: the operator may say so
        ({"DB_PREPARED_STATEMENTS": "true"}, {"prepare_threshold": 5, "server_side_binding": True}),
    ],
)
def test_a_transaction_pooler_gets_no_session_state(monkeypatch, env, expected) -> None:
    # given: the web's lock timeout, behind PgBouncer in transaction pooling
    for name in ("DB_PREPARED_STATEMENTS", "DB_SERVER_SIDE_BINDING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DB_POOLER", "pgbouncer-transaction")
    monkeypatch.setenv("DB_LOCK_TIMEOUT_MS", "2000")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # when
    found = database_settings({"NAME": "x"})
    # then: no startup options (PgBouncer 1.18 refuses them; the pooler sets lock_timeout),
    # no prepared statements unless asked, no WITH HOLD cursors
    assert found["OPTIONS"] == expected
    assert found["DISABLE_SERVER_SIDE_CURSORS"] is True


def test_an_unknown_pooler_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("DB_POOLER", "pgbouncer-statement")
    with pytest.raises(ImproperlyConfigured, match="DB_POOLER"):
        database_settings({"NAME": "x"})


def test_the_churning_tables_are_vacuumed_after_a_fixed_number_of_changes() -> None:
    # when: the migrations have run (the test database)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s)",
            [
                [
                    "orders_order",
                    "orders_payment",
                    "orders_reservation",
                    "orders_callbackdelivery",
                    "coupons_coupon",
                ]
            ],
        )
        options = dict(cursor.fetchall())
    # then: each vacuums and analyzes after CHURN_ROWS changed rows, whatever its size, and
    # its vacuum does not pause to spare the disk
    expected = {
        "autovacuum_vacuum_cost_delay=0",
        "autovacuum_vacuum_scale_factor=0",
        f"autovacuum_vacuum_threshold={CHURN_ROWS}",
        "autovacuum_analyze_scale_factor=0",
        f"autovacuum_analyze_threshold={CHURN_ROWS}",
    }
    assert len(options) == 5
    assert all(set(found or []) == expected for found in options.values()), options


def test_timestamps_read_as_django_reads_them_through_the_c_loader(chatbot) -> None:
    # given: a time written in another zone, with microseconds
    order = place(chatbot, "c-1", [(ProductFactory(), 1)])
    shanghai = datetime(2026, 2, 17, 20, 30, 15, 123456, tzinfo=ZoneInfo("Asia/Shanghai"))
    Order.objects.filter(pk=order.pk).update(updated_at=shanghai)
    table = Order._meta.db_table
    # when: read by the ORM, by a prepared statement and by a plain cursor
    by_orm = Order.objects.get(pk=order.pk).updated_at
    by_prepared = prepared_rows(f"SELECT updated_at FROM {table} WHERE id = %s", [order.pk])  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT updated_at FROM {table} WHERE id = %s", [order.pk])  # noqa: S608
        by_cursor = cursor.fetchone()[0]
    # then: the same instant in UTC, stamped with datetime.UTC as Django's own loader does,
    # and the loader is the C one's wrapper (infra.sql.read_timestamps_in_c)
    for got in (by_orm, by_prepared[0][0], by_cursor):
        assert got == shanghai
        assert got.tzinfo is UTC
        assert (got.hour, got.minute, got.microsecond) == (12, 30, 123456)
    loader = connection.connection.adapters.get_loader(
        psycopg.adapters.types["timestamptz"].oid, psycopg.pq.Format.TEXT
    )
    assert loader.__name__ == "_UtcTimestamptzLoader"


# --- A migration changes a table under prepared statements ------------------------------------


@pytest.fixture
def migration() -> Iterator[Callable[[str], None]]:
    """Runs DDL from a connection of its own, as `migrate` does while the stack serves (a
    change made on the prepared statements' own connection would make psycopg drop them
    itself). Drops the test's table after."""
    with psycopg.connect(database_url_of_tests(), autocommit=True) as other:
        yield other.execute
        other.execute(f"DROP TABLE IF EXISTS {PROBE}")


PROBE = "sql_plan_probe"
PROBE_CREATE = f"CREATE TABLE {PROBE} AS SELECT 1::bigint AS id, 7 AS v"
PROBE_STAR = f"SELECT * FROM {PROBE} ORDER BY id"  # noqa: S608 (a star on purpose: see below)


@pytest.mark.django_db(transaction=True)
def test_a_prepared_statement_whose_result_type_changed_is_prepared_again(migration) -> None:
    # given: a statement prepared on this connection, reading a table with a star
    migration(PROBE_CREATE)
    assert prepared_rows(PROBE_STAR, []) == [(1, 7)]
    # when: a column's type changes, then a column is added (each changes the result type)
    migration(f"ALTER TABLE {PROBE} ALTER COLUMN v TYPE text")
    after_type = [prepared_rows(PROBE_STAR, []) for _ in range(2)]
    migration(f"ALTER TABLE {PROBE} ADD COLUMN w integer")
    after_add = [prepared_rows(PROBE_STAR, []) for _ in range(2)]
    # then: each run answers the table as it is now (not "cached plan must not change result
    # type", once nor for ever after), and the statement is prepared again
    assert after_type == [[(1, "7")]] * 2
    assert after_add == [[(1, "7", None)]] * 2
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = %s", [PROBE_STAR]
        )
        assert cursor.fetchone() == (1,)


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_plan_changed_inside_its_transaction_runs_again(migration) -> None:
    # given: a batch (one transaction) that reads with a prepared statement, run once
    migration(PROBE_CREATE)
    runs = []

    def batch() -> list[tuple]:
        runs.append(1)
        with transaction.atomic():
            return prepared_rows(PROBE_STAR, [])

    assert batch() == [(1, 7)]
    # when: the table changes; the batch meets it inside its transaction, which PostgreSQL
    # aborts: that run cannot go on, and says so as PlanChanged
    migration(f"ALTER TABLE {PROBE} ADD COLUMN w integer")
    with pytest.raises(PlanChanged, match="cached plan must not change result type"):
        batch()
    # then: the rollback dropped the statement, so the next run prepares it afresh
    assert batch() == [(1, 7, None)]
    # and run through `replanned`, a batch that meets a change runs once more, and answers
    migration(f"ALTER TABLE {PROBE} ALTER COLUMN v TYPE text")
    runs.clear()
    assert replanned(batch) == [(1, "7", None)]
    assert len(runs) == 2


@pytest.mark.django_db(transaction=True)
def test_the_workers_reads_do_not_read_a_column_a_migration_added(chatbot, migration) -> None:
    # given: an order, read once by its key and for update (both statements prepared)
    order = place(chatbot, "c-1", [(ProductFactory(), 1)])
    key = {"client_id": order.client_id, "idempotency_key": order.idempotency_key}
    assert order_by_key(**key) == order
    with transaction.atomic():
        assert orders_for_update(order_ids=[order.pk]) == [order]
    try:
        # when: a migration adds a column to the table
        migration("ALTER TABLE orders_order ADD COLUMN added_later integer")
        # then: the same statements read the order as before, without the new column
        found = order_by_key(**key)
        with transaction.atomic():
            (locked,) = orders_for_update(order_ids=[order.pk])
        assert (found, locked) == (order, order)
        assert not hasattr(locked, "added_later")
        assert locked.customer_id == "c-1"
        assert not locked.get_deferred_fields()
    finally:
        migration("ALTER TABLE orders_order DROP COLUMN IF EXISTS added_later")


def _statement_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


def _sleep(seconds: float) -> Callable[[], int]:
    def run() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s), 1", [seconds])
            return cursor.fetchone()[1]

    return run


def test_within_answers_in_time_and_puts_the_limit_back() -> None:
    # given: the caller's own transaction (the test's) and its time-out
    before = _statement_timeout()
    # when
    answered = within(1000, _sleep(0.01))
    # then: the answer, and the caller's transaction has its time-out back
    assert answered == 1
    assert _statement_timeout() == before
    assert within(1000, _statement_timeout) == "1s"  # the limit held inside the run


def test_within_gives_none_when_a_statement_runs_out_of_time() -> None:
    # given
    before = _statement_timeout()
    # when: a statement that takes 300 ms, allowed 50
    answered = within(50, _sleep(0.3))
    # then: no answer, the caller's transaction goes on, with its time-out
    assert answered is None
    assert _sleep(0.1)() == 1
    assert _statement_timeout() == before


def test_within_lets_other_database_errors_through() -> None:
    # given / when / then
    def broken() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")

    with pytest.raises(DataError):
        within(1000, broken)
