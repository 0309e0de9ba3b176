"""Orders by the hundred thousand, written in SQL the way the pipeline leaves them: for the
tests that prove a read costs the orders in flight, not the history (a plan chosen for an
empty table says nothing about one of millions)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from coupons.models import Campaign
from shop.models import ApiClient, Product

# Orders are written in SQL, each kind in one statement with its rows in the other tables
# (data-modifying CTEs): the services would take an hour for a million.
ORDERS_SQL = """
WITH o AS (
  INSERT INTO orders_order (public_id, client_id, customer_id, campaign_id, coupon_code, status,
    reason, subtotal, discount, payable, currency, callback_url, idempotency_key, request_hash,
    queue_ticket, request_id, park_reason, created_at, updated_at)
  SELECT gen_random_uuid(), %(client)s, %(prefix)s || g, %(campaign)s, '', %(status)s, '',
    1000, 0, 1000, 'CNY', 'https://chatbot.example/cb', %(prefix)s || g, '', g, '', '',
    now() - interval '1 hour', now() - interval '1 hour'
  FROM generate_series(1, %(count)s) g
  RETURNING id, public_id, campaign_id, callback_url, status
), l AS (
  INSERT INTO orders_orderline (order_id, product_id, sku, quantity, unit_price)
  SELECT id, %(product)s, %(sku)s, 1, 1000 FROM o WHERE %(lines)s
), h AS (
  INSERT INTO orders_reservation (order_id, campaign_id, discount, expires_at, closed_at,
    outcome, created_at, updated_at)
  SELECT id, campaign_id, 0, %(expires)s, %(closed)s, %(outcome)s, now(), now()
  FROM o WHERE %(hold)s
), p AS (
  INSERT INTO orders_payment (order_id, idempotency_key, amount, currency, status, charge_id,
    attempts, last_error, next_attempt_at, created_at, updated_at)
  SELECT id, 'order-' || public_id, 1000, 'CNY', %(payment)s::text, '', 1, '', %(next)s,
    now(), now()
  FROM o WHERE %(payment)s::text <> ''
)
INSERT INTO orders_callbackdelivery (order_id, url, order_status, payload, state, attempts,
  next_attempt_at, last_error, delivered_at, created_at, updated_at)
SELECT id, callback_url, status, '{}', %(callback)s::text, 1, %(callback_at)s, '', %(delivered)s,
  now(), now()
FROM o WHERE %(callback)s::text <> ''
"""


@dataclass(frozen=True)
class Kind:
    """Orders of one state, customers `<prefix><n>`, with the rows that state has."""

    prefix: str
    status: str
    hold: tuple | None = None  # expires_at, closed_at, outcome
    payment: tuple[str, object] = ("", None)  # status, next_attempt_at
    callback: tuple[str, object, object] = ("", None, None)  # state, next_attempt_at, delivered
    lines: bool = True


def orders(client: ApiClient, campaign: Campaign, product: Product, kind: Kind, count: int) -> None:
    expires, closed, outcome = kind.hold or (None, None, "")
    with connection.cursor() as cursor:
        cursor.execute(
            ORDERS_SQL,
            {
                "client": client.pk,
                "campaign": campaign.pk,
                "product": product.pk,
                "sku": product.sku,
                "prefix": kind.prefix,
                "status": kind.status,
                "count": count,
                "lines": kind.lines,
                "hold": kind.hold is not None,
                "expires": expires,
                "closed": closed,
                "outcome": outcome,
                "payment": kind.payment[0],
                "next": kind.payment[1],
                "callback": kind.callback[0],
                "callback_at": kind.callback[1],
                "delivered": kind.callback[2],
            },
        )


def in_flight(client: ApiClient, campaign: Campaign, product: Product, count: int) -> None:
    """What a busy pipeline has at any moment: orders waiting in line, orders held for their
    payment in each state a payment can be in, holds past their time, callbacks due."""
    now = timezone.now()
    past, soon, due = now - timedelta(minutes=20), now + timedelta(minutes=5), now
    n = count // 4
    kinds = [
        (Kind("w-", "received"), count),
        (Kind("h-", "reserved", hold=(None, None, "")), n),  # waits for its first attempt
        (Kind("p-", "reserved", hold=(soon, None, ""), payment=("pending", soon)), n),
        (Kind("r-", "reserved", hold=(past, None, ""), payment=("retry", soon)), n),
        (
            Kind(
                "d-",
                "reserved",
                hold=(soon, None, ""),
                payment=("retry", due),
                callback=("pending", due, None),
            ),
            n,
        ),
    ]
    for kind, rows in kinds:
        orders(client, campaign, product, kind, rows)


def finished(client: ApiClient, campaign: Campaign, product: Product, count: int) -> None:
    """`count` orders already final, as nine hours of a campaign leave them: paid with their
    charge, sold hold and delivered callback; some rejected, declined or expired. (Their lines
    are left out: no batch read looks at lines but by order id.)"""
    ago = timezone.now() - timedelta(hours=5)
    sent = ("delivered", ago, ago)
    kinds = [
        (Kind("f-p-", "paid", (ago, ago, "sold"), ("succeeded", ago), sent, False), 940),
        (Kind("f-r-", "rejected", None, ("", None), sent, False), 30),
        (
            Kind("f-d-", "payment_failed", (ago, ago, "released"), ("declined", ago), sent, False),
            20,
        ),
        (Kind("f-e-", "expired", (ago, ago, "released"), ("retry", ago), sent, False), 10),
    ]
    with without_foreign_key_checks():
        for kind, per_mille in kinds:
            orders(client, campaign, product, kind, count * per_mille // 1000)


@contextmanager
def without_foreign_key_checks() -> Iterator[None]:
    """The rows are written without PostgreSQL's per-row foreign-key triggers
    (session_replication_role = replica, as a restore does), which were near half the time of
    a million: every row's keys come from rows the same statement wrote or the fixtures made,
    so there is nothing for them to find. Only a superuser may; anyone else gets the checks."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('is_superuser') = 'on'")
        (superuser,) = cursor.fetchone()
        if superuser:
            cursor.execute("SET session_replication_role = replica")
        try:
            yield
        finally:
            if superuser:
                cursor.execute("SET session_replication_role = DEFAULT")
