"""The coupons list filtered to expired coupons, as 0004's admin indexes: with none or few
expired (all through a campaign: the sweep expires them after their validity), the list
walked every coupon from the newest down, 0.3 to 0.5 s a page at 3 million coupons
(docs/admin.md). Partial: claims insert issued coupons and add no entry; only the sweep's
UPDATE does. Raw SQL like 0004's, built CONCURRENTLY; dropped plainly when migrating back
(as orders 0010), which may run inside a transaction."""

from django.db import migrations


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("shop", "0007_livemode"),
        ("coupons", "0007_livemode"),
    ]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS coupon_expired_idx "
                "ON coupons_coupon (id) WHERE status = 'expired'"
            ),
            reverse_sql="DROP INDEX IF EXISTS coupon_expired_idx",
        )
    ]
