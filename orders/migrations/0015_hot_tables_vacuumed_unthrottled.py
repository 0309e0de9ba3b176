"""Autovacuum of the pipeline's churning tables without cost-based pauses, so that a run ends
before the next is due however large the tables grow (infra.sql.vacuumed_unthrottled)."""

from django.db import migrations

from infra.sql import vacuumed_unthrottled

TABLES = ["orders_order", "orders_payment", "orders_reservation", "orders_callbackdelivery"]


class Migration(migrations.Migration):
    dependencies = [("orders", "0014_callback_pending_idx")]

    operations = [vacuumed_unthrottled(table) for table in TABLES]
