"""Writes to campaigns and coupons, by what they do: `claims` (a shopper takes a coupon),
`holds` (the coupon and budget side of an order's hold) and `campaigns` (seeding, staff
controls, campaigns loaded from a file). Callers use `coupons.services.<name>`.

# lock order: order → campaign → coupon slice → coupon → product. Counters change only
# through one conditional UPDATE; the CHECK constraints on Campaign and CouponSlice (and the
# slices' caps summing to the campaign's total) stop anything the Python misses.
"""

from coupons.services.campaigns import (
    CAMPAIGN_CREATE_FIELDS,
    CAMPAIGN_EDITABLE,
    CAMPAIGN_LIMITS,
    CAMPAIGN_TERMS,
    campaign_create,
    campaign_load,
    campaign_move,
    campaign_seed,
    campaign_set_status,
    campaign_status_change,
    campaign_totals_change,
    campaign_update,
    coupons_issued_add,
)
from coupons.services.claims import Claim, coupon_claim
from coupons.services.holds import (
    budget_hold,
    budget_hold_as_read,
    budget_refund,
    budget_release,
    budget_spend,
    coupons_expire,
    coupons_hold,
    coupons_redeem,
    coupons_release,
)

__all__ = [
    "CAMPAIGN_CREATE_FIELDS",
    "CAMPAIGN_EDITABLE",
    "CAMPAIGN_LIMITS",
    "CAMPAIGN_TERMS",
    "Claim",
    "budget_hold",
    "budget_hold_as_read",
    "budget_refund",
    "budget_release",
    "budget_spend",
    "campaign_create",
    "campaign_load",
    "campaign_move",
    "campaign_seed",
    "campaign_set_status",
    "campaign_status_change",
    "campaign_totals_change",
    "campaign_update",
    "coupon_claim",
    "coupons_expire",
    "coupons_hold",
    "coupons_issued_add",
    "coupons_redeem",
    "coupons_release",
]
