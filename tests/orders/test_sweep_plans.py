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

The tables hold orders in flight and many more finished ones, analyzed, as in production: on
near-empty tables every index costs the planner the same, and it may pick a full index (CI
did, order_campaign_status_idx for LIVE_CAMPAIGNS) that at volume reads all of history.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection, transaction

from coupons import sql as coupons_sql
from orders import sql as orders_sql
from shop.models import ApiClient
from tests.factories import volume
from tests.factories.coupons import CampaignFactory
from tests.factories.shop import ProductFactory

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


def _reads_through(plan: str, index: str) -> bool:
    """Whether the plan reads through the index ("a|b": either serves): "Index Scan using x",
    "Index Only Scan using x" or "Bitmap Index Scan on x"."""
    return any(
        f"using {one} " in plan or f"Index Scan on {one}" in plan for one in index.split("|")
    )


def _pipeline(client: ApiClient, *, analyzed_in_flight: bool) -> None:
    """400 orders in flight among 20,000 finished, and ANALYZE as autovacuum runs it: after the
    orders in flight arrived, or (`analyzed_in_flight=False`) before, as production's
    statistics often are, taken when hardly a delivery was pending."""
    campaign, product = CampaignFactory(), ProductFactory(price=1000, stock=1_000_000)
    volume.finished(client, campaign, product, 20_000)
    if analyzed_in_flight:
        volume.in_flight(client, campaign, product, 400)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    if not analyzed_in_flight:
        volume.in_flight(client, campaign, product, 400)


@pytest.fixture
def busy(chatbot: ApiClient) -> None:
    _pipeline(chatbot, analyzed_in_flight=True)


@pytest.mark.usefixtures("busy")
def test_a_generic_plan_reads_the_partial_index_not_the_table() -> None:
    # when: each read is planned for any parameters (every parameter is a time)
    plans = {
        name: _generic_plan(sql, ["now()"] * sql.count("%s")) for name, (sql, _) in SWEEP.items()
    }

    # then: no table is walked, and each is read through its partial index
    wrong = {
        name: plans[name]
        for name, (_, indexes) in SWEEP.items()
        if "Seq Scan" in plans[name] or not all(_reads_through(plans[name], i) for i in indexes)
    }
    assert wrong == {}, "\n\n".join(f"{name}:\n{plan}" for name, plan in wrong.items())


@pytest.fixture
def analyzed_before_a_burst(chatbot: ApiClient) -> None:
    _pipeline(chatbot, analyzed_in_flight=False)


# A probe of an order's deliveries by that order: an index scan of the "older" or "newer"
# delivery whose condition is the order of the delivery at hand (d, or d_1 in a CTE).
_PROBE_BY_ORDER = re.compile(
    r"using \w+ on orders_callbackdelivery (older|newer)[^\n]*\n\s*"
    r"Index Cond: \(+order_id = d(_\d+)?\.order_id\)"
)
_NOW = "now()"
# The claim as it was: "no older pending delivery" as NOT EXISTS, which the planner may join
# as a walk of every pending delivery per due one.
_CLAIM_NOT_EXISTS = (
    "SELECT d.id FROM orders_callbackdelivery d WHERE d.state = 'pending' "
    "AND d.next_attempt_at <= %s AND NOT EXISTS (SELECT 1 FROM orders_callbackdelivery older "
    "WHERE older.order_id = d.order_id AND older.state = 'pending' AND older.id < d.id) "
    "ORDER BY d.next_attempt_at, d.id LIMIT %s FOR NO KEY UPDATE OF d SKIP LOCKED"
)


@pytest.mark.usefixtures("analyzed_before_a_burst")
def test_the_callback_worker_probes_an_orders_deliveries_by_the_order() -> None:
    """The claim's "oldest pending delivery of its order" and coalescing's "a newer one
    follows" look up that order's deliveries, a page or two a probe, whatever the statistics
    say; as a walk of a pending index per due delivery they read every pending delivery and
    every dead entry left since the last vacuum (the 2-million-order soak, docs/soak.md)."""
    plans = {
        "claim": _generic_plan(orders_sql.CALLBACKS_CLAIM, [_NOW, "200", _NOW, _NOW, _NOW]),
        "coalesce": _generic_plan(
            orders_sql.CALLBACKS_COALESCE,
            [_NOW, _NOW, "ARRAY['paid', 'rejected']", _NOW, "interval '30 seconds'"],
        ),
    }
    wrong = {name: plan for name, plan in plans.items() if not _PROBE_BY_ORDER.search(plan)}
    assert wrong == {}, "\n\n".join(f"{name}:\n{plan}" for name, plan in wrong.items())


@pytest.mark.usefixtures("analyzed_before_a_burst")
def test_the_claim_as_not_exists_fails_the_check() -> None:
    """What the test catches: under the same statistics, NOT EXISTS is planned as a walk."""
    plan = _generic_plan(_CLAIM_NOT_EXISTS, [_NOW, "200"])
    assert not _PROBE_BY_ORDER.search(plan), plan


def test_the_orm_form_of_a_read_fails_the_check() -> None:
    """What the test catches: the ORM's statement, its status a parameter."""
    old = (
        'SELECT 1 AS "a" FROM "orders_callbackdelivery" WHERE '
        '("orders_callbackdelivery"."next_attempt_at" <= %s '
        'AND "orders_callbackdelivery"."state" = %s::text) LIMIT 1'
    )
    plan = _generic_plan(old, ["now()", "'pending'"])
    assert "callback_due_idx" not in plan, plan
