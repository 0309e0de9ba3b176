"""An order's pending deliveries by order: the callback worker's "is an older delivery of this
order still pending?" (orders.sql.CALLBACKS_CLAIM) and "does a newer one follow?"
(CALLBACKS_COALESCE) probe it once per due delivery.

Without it the probe walked callback_due_idx, the pending deliveries by time plus the dead
entries every delivered one leaves until vacuum: in the 1.4-million-order soak (docs/soak.md)
the claim read 1,963 blocks a call in its first ten minutes and 3,918 after ninety, slower with
history. Here a probe is one or two pages whatever the table holds.

Built CONCURRENTLY, so a live table keeps taking deliveries while it builds; dropped plainly
when migrating back (as 0010)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("orders", "0013_order_test_idx")]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS callback_pending_idx "
                "ON orders_callbackdelivery (order_id, id) WHERE state = 'pending'"
            ),
            reverse_sql="DROP INDEX IF EXISTS callback_pending_idx",
            state_operations=[
                migrations.AddIndex(
                    model_name="callbackdelivery",
                    index=models.Index(
                        condition=models.Q(("state", "pending")),
                        fields=["order", "id"],
                        name="callback_pending_idx",
                    ),
                )
            ],
        )
    ]
