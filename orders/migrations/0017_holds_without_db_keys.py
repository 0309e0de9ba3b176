"""A hold's campaign and coupon lose their database keys, as the order's did (orders 0012):
each key's check ran at the batch's commit, one `SELECT ... FOR KEY SHARE` per hold and key,
on the campaign and coupon rows the same batch had just updated (docs/performance.md,
"Indexes nothing reads"). No orphan can appear: the batch writes the hold from the rows it
read and moved under its locks, and those tables refuse every DELETE (orders 0012's trigger).
Dropping a constraint only stops checking: safe while the previous release serves."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("coupons", "0010_unread_indexes_dropped"),
        ("orders", "0016_unread_indexes_dropped"),
    ]

    operations = [
        migrations.AlterField(
            model_name="reservation",
            name="campaign",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="coupons.campaign",
            ),
        ),
        migrations.AlterField(
            model_name="reservation",
            name="coupon",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="coupons.coupon",
            ),
        ),
    ]
