"""Indexes the staff admin's pages need to answer fast with millions of orders.

They live here, with the admin's audit log, because the apps' models belong to their owners;
each is raw SQL (Django's state does not know them, so makemigrations leaves them alone), built
CONCURRENTLY so that adding them to a live database does not block the pipeline's writes.
All but the first are partial: they hold only rows in a rare or short-lived state, so they
cost the pipeline next to nothing.
"""

from django.db import migrations

INDEXES = {
    # Orders by status for one campaign (GROUP BY, index-only), and the orders list filtered
    # by campaign and status, or by a rare status alone.
    "order_campaign_status_idx": "orders_order (campaign_id, status)",
    # Paid and declined orders per minute, and accept-to-paid times, over a time window.
    "orderevent_settled_idx": (
        "orders_orderevent (target, created_at) WHERE target IN ('paid', 'payment_failed')"
    ),
    # Dead work on the backlog page and in the lists' filters.
    "order_parked_idx": "orders_order (id) WHERE parked_at IS NOT NULL",
    "payment_parked_idx": "orders_payment (id) WHERE status = 'parked'",
    "callback_failed_idx": "orders_callbackdelivery (id) WHERE state = 'failed'",
    # Callbacks delivered per second (the callbacks queue's consume rate).
    "callback_delivered_idx": (
        "orders_callbackdelivery (delivered_at) WHERE delivered_at IS NOT NULL"
    ),
    # Coupons held by orders in flight, per campaign.
    "coupon_held_idx": "coupons_coupon (campaign_id) WHERE status = 'reserved'",
}


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("shop", "0003_audit_entries"),
        ("coupons", "0002_backlog_ceiling"),
        ("orders", "0002_parking_and_parked_payments"),
    ]

    operations = [
        migrations.RunSQL(
            sql=f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {target}",
            reverse_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
        )
        for name, target in INDEXES.items()
    ]
