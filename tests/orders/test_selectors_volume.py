"""Every stage's batch read costs the work in flight, never the history: each one is run
against the orders in flight alone, then again after 300,000 finished orders (with their
payments, holds and delivered callbacks) were added, and must not look at more than twice the
rows it looked at before.

"Rows looked at" is what EXPLAIN ANALYZE counts at every scan: the rows a scan returned plus
those it read and filtered out, times its loops. It is the cost that grows with a table, and
unlike a timing it does not move with the machine's load; the times are printed beside it
(`pytest -s`) for the record. A read that walks the finished orders (as the payment stage's
did through the primary key) looks at 300,000 rows and fails by far: 500 times what a line
holds. (A million, as it was, took 45 s of the everyday suite to say the same.)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from coupons.models import Campaign
from orders import selectors
from orders import sql as orders_sql
from orders.models import Order
from orders.services import callbacks
from shop.models import ApiClient
from tests.factories import volume
from tests.factories.coupons import CampaignFactory
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)

FINISHED = 300_000
IN_FLIGHT = 600  # of each kind: waiting, held for payment, callbacks due
SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")


@dataclass(frozen=True)
class Cost:
    rows: int  # rows the read's scans looked at
    ms: float  # PostgreSQL's execution time


def _rows_looked_at(node: dict) -> int:
    rows = 0
    if node["Node Type"] in SCANS:
        seen = (
            node["Actual Rows"]
            + node.get("Rows Removed by Filter", 0)
            + node.get("Rows Removed by Index Recheck", 0)
        )
        rows += seen * node["Actual Loops"]
    return rows + sum(_rows_looked_at(child) for child in node.get("Plans", []))


def _cost(sql: str, params: list | tuple | None) -> Cost:
    """EXPLAIN ANALYZE the statement in a savepoint rolled back after, so a claim's own
    writes (a lease, a lock) leave the state as it was for the next read."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
        transaction.set_rollback(True)
    plan = plan if isinstance(plan, list) else json.loads(plan)
    return Cost(rows=_rows_looked_at(plan[0]["Plan"]), ms=plan[0]["Execution Time"])


def _captured(read: Callable[[], object]) -> list[tuple[str, None]]:
    """The statements an ORM-built read sends, as sent (values bound in the text)."""
    with transaction.atomic(), CaptureQueriesContext(connection) as seen:
        read()
    return [(q["sql"], None) for q in seen.captured_queries if q["sql"].startswith("SELECT")]


def _reads(campaign: Campaign) -> dict[str, list[tuple[str, list | None]]]:
    """Every batch read of every stage and of the sweep, as (SQL, parameters)."""
    now = timezone.now()
    stale = now - timedelta(seconds=30)
    customers = [f"w-{i}" for i in range(1, 501)]
    return {
        "reservations: the line": [(orders_sql.CAMPAIGN_LINE_FOR_UPDATE, [campaign.pk, 500])],
        "reservations: per customer": [(orders_sql.PER_CUSTOMER, [campaign.pk, customers])],
        "payments: due": [(orders_sql.ORDERS_DUE_FOR_PAYMENT, [now, 200])],
        "callbacks: coalesce": [
            (
                orders_sql.CALLBACKS_COALESCE,
                [now, now, callbacks._TERMINAL, now, callbacks._lease()],
            ),
        ],
        "callbacks: claim": [(orders_sql.CALLBACKS_CLAIM, [now, 200, now, now, now])],
        "sweep: expired holds": _captured(
            lambda: selectors.expired_holds_for_update(now=now, limit=500)
        ),
        "sweep: stale lines": [(orders_sql.STALE_RECEIVED_CAMPAIGNS, [stale])],
        "sweep: waiting lines": [(orders_sql.WAITING_CAMPAIGNS, [now])],
        "sweep: live lines": [(orders_sql.LIVE_CAMPAIGNS, [])],
        "sweep: lines aside": [(orders_sql.LINES_ASIDE, [])],
        "sweep: payments due": [(orders_sql.PAYMENTS_DUE_EXIST, [stale, now])],
        "sweep: callbacks due": [(orders_sql.CALLBACKS_DUE_EXIST, [now])],
        "sweep: line rebuild": _captured(lambda: selectors.queue_tickets(campaign_id=campaign.pk)),
    }


def _costs(campaign: Campaign) -> dict[str, Cost]:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would have, in production
    costs = {}
    for name, statements in _reads(campaign).items():
        # Three runs: the rows looked at are the same each time; the time is the best one's
        # (the first may read pages from disk).
        runs = [[_cost(sql, params) for sql, params in statements] for _ in range(3)]
        costs[name] = Cost(
            rows=sum(c.rows for c in runs[0]), ms=min(sum(c.ms for c in run) for run in runs)
        )
    return costs


def test_every_stage_batch_read_costs_the_orders_in_flight_not_the_finished(
    chatbot: ApiClient,
) -> None:
    # given: a campaign with the orders a busy pipeline has in flight
    campaign = CampaignFactory()
    product = ProductFactory(price=1000, stock=10_000_000)
    volume.in_flight(chatbot, campaign, product, IN_FLIGHT)
    before = _costs(campaign)
    assert before["payments: due"].rows > 0  # the reads find work: the comparison means something

    # when: 300,000 finished orders join them
    volume.finished(chatbot, campaign, product, FINISHED)
    after = _costs(campaign)

    # then: no read looks at more than twice what it looked at with the orders in flight
    # alone (or than twice those orders: a plan may change between two ways of reading them)
    sys.stdout.write(
        f"\n{'read':<28} {'rows at 0':>10} {'at 300 k':>8} {'ms at 0':>8} {'at 300 k':>8}\n"
    )
    for name in before:
        b, a = before[name], after[name]
        sys.stdout.write(f"{name:<28} {b.rows:>10} {a.rows:>8} {b.ms:>8.3f} {a.ms:>8.3f}\n")
    in_flight = Order.objects.filter(customer_id__regex=r"^[whprd]-").count()
    grown = {
        name: (before[name].rows, after[name].rows)
        for name in before
        if after[name].rows > 2 * max(before[name].rows, in_flight)
    }
    assert grown == {}, f"reads that grow with the finished orders (rows at 0, at 300 k): {grown}"
