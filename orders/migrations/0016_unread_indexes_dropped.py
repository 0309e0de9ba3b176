"""Six indexes of the order pipeline's tables that nothing reads, dropped. Each cost an entry
on every INSERT and, on orders and holds, on every move (never a HOT update: status and
closed_at are in partial indexes):

- orders_order.coupon_id: nothing reads orders by coupon, and a coupon is never deleted
  (orders 0012), so not even PROTECT's check runs;
- orders_orderline.order_id: order_line_once_per_product (order_id, product_id) starts with
  it; orders_orderline.product_id: nothing reads lines by product;
- orders_reservation.campaign_id and coupon_id: holds are read by order; an open hold's
  coupon is reservation_coupon_once's;
- orders_payment.idempotency_key's LIKE index (varchar_pattern_ops), which Django adds beside
  a unique CharField: keys are looked up whole.

Dropped CONCURRENTLY (infra.sql.index_dropped) while the old code serves; migrating back
builds them again."""

import django.db.models.deletion
from django.db import migrations, models

from infra.sql import index_dropped


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("coupons", "0010_unread_indexes_dropped"),
        ("orders", "0015_hot_tables_vacuumed_unthrottled"),
        ("shop", "0008_admin_expired_coupons_idx"),
    ]

    operations = [
        index_dropped(
            "orders_order",
            "orders_order_coupon_id_5bddb887",
            "(coupon_id)",
            state=[
                migrations.AlterField(
                    model_name="order",
                    name="coupon",
                    field=models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="orders",
                        to="coupons.coupon",
                    ),
                )
            ],
        ),
        index_dropped(
            "orders_orderline",
            "orders_orderline_order_id_17f8f3ef",
            "(order_id)",
            state=[
                migrations.AlterField(
                    model_name="orderline",
                    name="order",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="lines",
                        to="orders.order",
                    ),
                )
            ],
        ),
        index_dropped(
            "orders_orderline",
            "orders_orderline_product_id_a68772b6",
            "(product_id)",
            state=[
                migrations.AlterField(
                    model_name="orderline",
                    name="product",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="shop.product",
                    ),
                )
            ],
        ),
        index_dropped(
            "orders_reservation",
            "orders_reservation_campaign_id_45ef3e9c",
            "(campaign_id)",
            state=[
                migrations.AlterField(
                    model_name="reservation",
                    name="campaign",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="coupons.campaign",
                    ),
                )
            ],
        ),
        index_dropped(
            "orders_reservation",
            "orders_reservation_coupon_id_c426d32b",
            "(coupon_id)",
            state=[
                migrations.AlterField(
                    model_name="reservation",
                    name="coupon",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="coupons.coupon",
                    ),
                )
            ],
        ),
        index_dropped(
            "orders_payment",
            "orders_payment_idempotency_key_b0d2abb0_like",
            "(idempotency_key varchar_pattern_ops)",
        ),
    ]
