"""Three indexes of coupons_coupon that nothing reads, dropped: every claim's INSERT and each
of the coupon's moves (issued -> reserved -> redeemed; never a HOT update, status is in
partial indexes) wrote an entry in each.

- the LIKE index (varchar_pattern_ops) Django adds beside the unique code: the admin's search
  is exact, served by the unique index;
- campaign_id's and client_id's own: coupon_one_per_customer_slot and coupon_claim_once start
  with them, and the parents are never deleted (orders 0012), so no key check reads them.

Dropped CONCURRENTLY (infra.sql.index_dropped) while the old code serves; migrating back
builds them again."""

import django.db.models.deletion
from django.db import migrations, models

from infra.sql import index_dropped

COUPONS = "coupons_coupon"


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("coupons", "0009_coupons_vacuumed_unthrottled"),
        ("shop", "0008_admin_expired_coupons_idx"),
    ]

    operations = [
        index_dropped(COUPONS, "coupons_coupon_code_40174643_like", "(code varchar_pattern_ops)"),
        index_dropped(
            COUPONS,
            "coupons_coupon_campaign_id_5d074e29",
            "(campaign_id)",
            state=[
                migrations.AlterField(
                    model_name="coupon",
                    name="campaign",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="coupons",
                        to="coupons.campaign",
                    ),
                )
            ],
        ),
        index_dropped(
            COUPONS,
            "coupons_coupon_client_id_7468bd44",
            "(client_id)",
            state=[
                migrations.AlterField(
                    model_name="coupon",
                    name="client",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="coupons",
                        to="shop.apiclient",
                    ),
                )
            ],
        ),
    ]
