"""The sweep's "is anything due?" reads use their partial indexes under every plan.

The sweep (orders.services.lifecycle.pipeline_sweep) runs every few seconds on one long-lived
connection, where each statement is prepared; from its sixth run PostgreSQL may plan it once
for any parameters (a generic plan). A status given as a parameter cannot prove a partial
index's predicate then, so the ORM's forms of these reads walked whole tables: in the
2-million-order soak every sweep read all of orders_callbackdelivery, orders_payment and
coupons_coupon, slower with every order, and the next soak found the reads of which lines to
look at doing the same to orders_order (docs/soak.md). Here each statement is prepared,
planned generically (plan_cache_mode = force_generic_plan) with sequential scans priced out
(enable_seqscan = off, which a plan takes anyway when no index can serve it), and must read
its table through the partial index. The ORM's old forms fail this test.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection, transaction

from coupons import sql as coupons_sql
from orders import sql as orders_sql

pytestmark = pytest.mark.django_db

# statement, the partial index each of its tables must be read through
SWEEP = {
    "payments due": (
        orders_sql.PAYMENTS_DUE_EXIST,
        {"payment_open_idx", "order_settle_idx"},
    ),
    "callbacks due": (orders_sql.CALLBACKS_DUE_EXIST, {"callback_due_idx"}),
    "coupons expire": (coupons_sql.COUPONS_EXPIRE, {"coupon_issued_until_idx"}),
    "stale lines": (orders_sql.STALE_RECEIVED_CAMPAIGNS, {"order_live_idx|order_queue_idx"}),
    "waiting lines": (orders_sql.WAITING_CAMPAIGNS, {"order_live_idx|order_queue_idx"}),
    "lines aside": (orders_sql.LINES_ASIDE, {"order_settle_idx"}),
    "live lines": (
        orders_sql.LIVE_CAMPAIGNS,
        {"order_live_idx|order_queue_idx", "order_live_idx|order_settle_idx"},
    ),
}


def _generic_plan(sql: str, args: list[str]) -> str:
    """EXPLAIN of the statement (%s placeholders) prepared and planned for any parameters;
    `args` are the SQL expressions EXECUTE passes."""
    numbered = iter(range(1, len(args) + 1))
    text = re.sub(r"%s", lambda _: f"${next(numbered)}", sql)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"PREPARE sweep_read AS {text}")
        try:
            passed = f"({', '.join(args)})" if args else ""
            cursor.execute(f"EXPLAIN EXECUTE sweep_read{passed}")
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE sweep_read")


@pytest.mark.parametrize("name", sorted(SWEEP))
def test_a_generic_plan_reads_the_partial_index_not_the_table(name: str) -> None:
    sql, indexes = SWEEP[name]
    plan = _generic_plan(sql, ["now()"] * sql.count("%s"))  # every parameter is a time
    assert "Seq Scan" not in plan, plan
    for index in indexes:  # "a|b": either serves
        # "Index Scan using x", "Index Only Scan using x" or "Bitmap Index Scan on x"
        assert any(
            f"using {one} " in plan or f"Index Scan on {one}" in plan for one in index.split("|")
        ), plan


def test_the_orm_form_of_a_read_fails_the_check() -> None:
    """What the test catches: the ORM's statement, its status a parameter."""
    old = (
        'SELECT 1 AS "a" FROM "orders_callbackdelivery" WHERE '
        '("orders_callbackdelivery"."next_attempt_at" <= %s '
        'AND "orders_callbackdelivery"."state" = %s::text) LIMIT 1'
    )
    plan = _generic_plan(old, ["now()", "'pending'"])
    assert "callback_due_idx" not in plan, plan
