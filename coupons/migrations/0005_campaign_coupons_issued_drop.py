from django.db import migrations, models


class Migration(migrations.Migration):
    """The campaign's own counter goes: coupons issued are the sum of its slices."""

    dependencies = [
        ("coupons", "0004_coupon_slices_fill"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="campaign", name="campaign_coupons_within_total"),
        migrations.RemoveField(model_name="campaign", name="coupons_issued"),
    ]
