"""The per-customer limit's count reads a few rows per customer through this index, instead of
filtering every held or sold order of the campaign (orders.services.holds). Built
CONCURRENTLY: a live orders table keeps taking orders while it builds."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("orders", "0007_hot_tables_vacuumed_often")]

    operations = [
        AddIndexConcurrently(
            model_name="order",
            index=models.Index(
                condition=models.Q(("status__in", ["reserved", "paid"])),
                fields=["campaign", "customer_id"],
                name="order_shopper_idx",
            ),
        ),
    ]
