"""The per-customer limit's count reads a few rows per customer through this index, instead of
filtering every held or sold order of the campaign (orders.services.holds).

Built CONCURRENTLY, so a live orders table keeps taking orders while it builds. Dropped
plainly when migrating back (a moment's lock, and it works inside a transaction, as the
tests that migrate back and forth need)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("orders", "0007_hot_tables_vacuumed_often")]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS order_shopper_idx "
                "ON orders_order (campaign_id, customer_id) "
                "WHERE status IN ('reserved', 'paid')"
            ),
            reverse_sql="DROP INDEX IF EXISTS order_shopper_idx",
            state_operations=[
                migrations.AddIndex(
                    model_name="order",
                    index=models.Index(
                        condition=models.Q(("status__in", ["reserved", "paid"])),
                        fields=["campaign", "customer_id"],
                        name="order_shopper_idx",
                    ),
                )
            ],
        )
    ]
