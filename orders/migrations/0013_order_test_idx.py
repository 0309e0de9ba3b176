"""The admin's test-mode filter on orders (docs/integrator-guide.md, Test mode): test orders
by id, so that the orders list filtered to them reads those and not the live ones.

Without it the list walked the primary key from the newest order down, testing every live
order: with 3 million live orders and no test order, 1.3 s a page (docs/admin.md). Partial,
so it holds test orders only: a live order's INSERT and status changes only test the
predicate and add no entry (the cost docs/admin.md measures).

Built CONCURRENTLY, so a live orders table keeps taking orders while it builds; dropped
plainly when migrating back (as 0010)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("orders", "0012_hot_parents_without_db_keys")]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS order_test_idx "
                "ON orders_order (id) WHERE NOT livemode"
            ),
            reverse_sql="DROP INDEX IF EXISTS order_test_idx",
            state_operations=[
                migrations.AddIndex(
                    model_name="order",
                    index=models.Index(
                        condition=models.Q(("livemode", False)),
                        fields=["id"],
                        name="order_test_idx",
                    ),
                )
            ],
        )
    ]
