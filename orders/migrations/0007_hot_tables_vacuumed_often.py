"""Vacuum and analyze the pipeline's churning tables after a fixed number of changed rows,
not after a fifth of the table has changed (PostgreSQL's default scale factor).

Every order moves received → reserved → paid within seconds, and each move leaves a dead
entry in the partial indexes the workers read their lines through (order_live_idx,
order_queue_idx, payment_open_idx, reservation_open_idx, ...). Scans walk those entries until
VACUUM removes them: in bench/stage_costs.py a settlement batch's PostgreSQL CPU per order
was 1.57 ms with its own run's dead entries in place and 0.80 ms after a VACUUM. With the
default 20 % scale factor a table of ten million orders is vacuumed after two million
changes, hours at campaign rates; with these settings, about once a minute at 309 orders a
second. Needs autovacuum on (PostgreSQL's default; docs/operations.md, Starting).
"""

from django.db import migrations

from infra.sql import vacuumed_often

TABLES = ["orders_order", "orders_payment", "orders_reservation", "orders_callbackdelivery"]


class Migration(migrations.Migration):
    dependencies = [("orders", "0006_refund_lifecycle")]

    operations = [vacuumed_often(table) for table in TABLES]
