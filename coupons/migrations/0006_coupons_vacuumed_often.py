"""Coupons churn as orders do (issued → reserved → redeemed within seconds): vacuumed and
analyzed after a fixed number of changes, as orders.migrations.0007 explains."""

from django.db import migrations

from infra.sql import vacuumed_often


class Migration(migrations.Migration):
    dependencies = [("coupons", "0005_campaign_coupons_issued_drop")]

    operations = [vacuumed_often("coupons_coupon")]
