"""The expiry sweep's index (coupons.services.holds.coupons_expire, every few seconds): issued
coupons by their validity, so the sweep reads the coupons past it and not the whole table.
Without it every sweep read all of coupons_coupon, 0.4 s at 2.1 million coupons and longer with
each claim (docs/soak.md). Partial: a coupon leaves it when it is reserved, redeemed or
expired; a claim adds one entry.

Built CONCURRENTLY, so a live coupons table keeps taking claims while it builds; dropped
plainly when migrating back (as orders 0013)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("coupons", "0007_livemode")]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS coupon_issued_until_idx "
                "ON coupons_coupon (valid_until) WHERE status = 'issued'"
            ),
            reverse_sql="DROP INDEX IF EXISTS coupon_issued_until_idx",
            state_operations=[
                migrations.AddIndex(
                    model_name="coupon",
                    index=models.Index(
                        condition=models.Q(("status", "issued")),
                        fields=["valid_until"],
                        name="coupon_issued_until_idx",
                    ),
                )
            ],
        )
    ]
