"""Coupons churn as orders do: vacuumed without cost-based pauses, as
orders.migrations.0015 (infra.sql.vacuumed_unthrottled)."""

from django.db import migrations

from infra.sql import vacuumed_unthrottled


class Migration(migrations.Migration):
    dependencies = [("coupons", "0008_coupon_issued_until_idx")]

    operations = [vacuumed_unthrottled("coupons_coupon")]
