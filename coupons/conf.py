"""Settings of the coupons app, gathered by config/settings/base.py."""

import environ

env = environ.Env()

# Rows each campaign's coupon counter is split into (coupons.models.CouponSlice), so that
# concurrent claims do not queue on one row. Applies to campaigns created from now on.
COUPON_SLICES = env.int("COUPON_SLICES", default=16)
