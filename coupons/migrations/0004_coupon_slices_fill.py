from django.conf import settings
from django.db import migrations

# Each existing campaign gets COUPON_SLICES slices: the total and the coupons already issued
# spread evenly (slice n gets one more of each remainder while n < remainder), so that every
# slice's issued <= cap and the caps sum to coupons_total.
FILL = """
INSERT INTO coupons_couponslice (campaign_id, number, issued, cap)
SELECT c.id, n,
       c.coupons_issued / %(n)s + (n < c.coupons_issued %% %(n)s)::int,
       c.coupons_total / %(n)s + (n < c.coupons_total %% %(n)s)::int
FROM coupons_campaign c CROSS JOIN generate_series(0, %(n)s - 1) AS n
"""

UNFILL = """
UPDATE coupons_campaign c
SET coupons_issued = coalesce((SELECT sum(s.issued) FROM coupons_couponslice s
                               WHERE s.campaign_id = c.id), 0)
"""


def fill(apps, schema_editor):
    schema_editor.execute(FILL, {"n": max(1, int(settings.COUPON_SLICES))})


def unfill(apps, schema_editor):
    schema_editor.execute(UNFILL)  # the slices go with their table (0003 reversed)


class Migration(migrations.Migration):
    dependencies = [
        ("coupons", "0003_couponslice"),
    ]

    operations = [migrations.RunPython(fill, unfill)]
