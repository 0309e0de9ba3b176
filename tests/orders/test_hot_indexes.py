"""Every index of the tables each order writes has a reader. An index is paid for by every
INSERT and, as no move of an order, hold, payment or coupon is a HOT update (their statuses
are in partial indexes), by every move too: an entry per index per row. orders 0016 and
coupons 0010 dropped nine that nothing read (docs/performance.md, "Indexes nothing reads").

This fails when an index appears that is not listed here (a ForeignKey's default index
comes back, a new index is added) or a listed one is gone: name its reader below, or drop
it."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

READERS: dict[str, dict[str, str]] = {
    "orders_order": {
        "orders_order_pkey": "every stage, by id",
        "orders_order_public_id_key": "the API's order id (status, cancel)",
        "order_placed_once": "intake's idempotency, unique",
        "order_customer_idx": "a shopper's orders (the API's list, the admin's search)",
        "order_ticket_idx": "the line's rebuild after Redis lost it (the highest ticket)",
        "order_campaign_status_idx": "a campaign's counts by status (figures, the admin)",
        "order_queue_idx": "the reservation line (partial: received)",
        "order_settle_idx": "the payment line (partial: reserved)",
        "order_live_idx": "the sweep (partial: received, reserved)",
        "order_shopper_idx": "the per-customer limit (partial: reserved, paid)",
        "order_test_idx": "the admin's test-mode filter (partial)",
        "order_parked_idx": "the admin's parked orders (partial)",
    },
    "orders_orderline": {
        "orders_orderline_pkey": "the primary key",
        "order_line_once_per_product": "an order's lines, unique per product",
    },
    "orders_reservation": {
        "orders_reservation_pkey": "the primary key",
        "orders_reservation_order_id_key": "an order's hold, one to one",
        "reservation_coupon_once": "one open hold per coupon, unique (partial)",
        "reservation_open_idx": "the expiry of open holds (partial)",
    },
    "orders_payment": {
        "orders_payment_pkey": "the primary key",
        "orders_payment_order_id_key": "an order's payment, one to one",
        "orders_payment_idempotency_key_key": "one payment per charge key, unique",
        "payment_open_idx": "the payments due (partial)",
        "payment_parked_idx": "the admin's parked payments (partial)",
    },
    "coupons_coupon": {
        "coupons_coupon_pkey": "the primary key",
        "coupons_coupon_code_key": "intake's coupon look-up by code, unique",
        "coupon_one_per_customer_slot": "the per-customer claim limit, unique",
        "coupon_claim_once": "a claim's idempotency, unique",
        "coupon_customer_idx": "the admin's search by customer id",
        "coupon_issued_until_idx": "the coupon expiry sweep (partial)",
        "coupon_held_idx": "a campaign's held coupons (partial)",
        "coupon_expired_idx": "the admin's expired coupons (partial)",
    },
}


@pytest.mark.parametrize("table", READERS)
def test_every_index_of_a_table_each_order_writes_has_a_reader(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [table])
        found = {name for (name,) in cursor.fetchall()}
    listed = set(READERS[table])
    assert found - listed == set(), f"{table}: indexes with no reader named here"
    assert listed - found == set(), f"{table}: listed but not in the database"
