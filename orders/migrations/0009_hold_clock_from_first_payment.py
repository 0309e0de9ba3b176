"""A hold's clock starts at the order's first payment attempt, and an expired order says why.

`expires_at` becomes nullable: a hold taken by the reservation worker has no deadline until
the payment stage first tries to charge it (orders.services.settlement), so an order that
waits in our own payment line is never expired for our slowness. Dropping NOT NULL changes
only the catalogue; code still writing a deadline at reservation keeps working meanwhile.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("orders", "0008_order_shopper_idx")]

    operations = [
        migrations.AlterField(
            model_name="order",
            name="reason",
            field=models.CharField(
                blank=True,
                choices=[
                    ("sold_out", "Sold Out"),
                    ("out_of_stock", "Out Of Stock"),
                    ("coupon_invalid", "Coupon Invalid"),
                    ("coupon_expired", "Coupon Expired"),
                    ("coupon_in_use", "Coupon In Use"),
                    ("limit_reached", "Limit Reached"),
                    ("budget_exhausted", "Budget Exhausted"),
                    ("campaign_not_active", "Campaign Not Active"),
                    ("payment_timeout", "Payment Timeout"),
                ],
                default="",
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="reservation",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
