"""The coupon and budget side of an order's hold: coupons held, released, redeemed and expired,
the campaign's budget held, released, spent and refunded.

# lock order: order → campaign → coupon slice → coupon → product. Counters change only
# through one conditional UPDATE; the CHECK constraints on Campaign and CouponSlice (and the
# slices' caps summing to the campaign's total) stop anything the Python misses.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.db.models import F
from django.utils import timezone

from coupons import sql
from coupons.errors import (
    BudgetExhausted,
    BudgetNotSpent,
    CouponNotHeld,
)
from coupons.models import (
    COUPON_ALLOWED,
    Campaign,
    Coupon,
)
from infra.errors import InvalidTransition
from infra.sql import prepared_count

# --- The coupon and budget side of an order's hold ----------------------------------------
# Called by orders' services inside their transaction, after they locked the orders.


def coupons_hold(*, coupon_ids: Collection[int]) -> None:
    """issued → reserved for every coupon, or CouponNotHeld (the caller rolls back)."""
    _coupons_move(coupon_ids, Coupon.Status.ISSUED, Coupon.Status.RESERVED)


def coupons_release(*, coupon_ids: Collection[int]) -> None:
    """reserved → issued: the order gave its coupon back (cancelled, declined, expired)."""
    _coupons_move(coupon_ids, Coupon.Status.RESERVED, Coupon.Status.ISSUED)


def coupons_redeem(*, coupon_ids: Collection[int]) -> None:
    """reserved → redeemed: the order is paid."""
    _coupons_move(coupon_ids, Coupon.Status.RESERVED, Coupon.Status.REDEEMED)


def _coupons_move(coupon_ids: Collection[int], source: str, target: str) -> None:
    """The one way a held coupon's status changes: every coupon from `source` to `target`
    (COUPON_ALLOWED) in one conditional UPDATE, or CouponNotHeld (the caller rolls back)."""
    if target not in COUPON_ALLOWED[source]:
        raise InvalidTransition(entity="coupon", current=source, target=target)
    if not coupon_ids:
        return
    params = [str(target), timezone.now(), list(coupon_ids), str(source)]
    moved = prepared_count(sql.COUPONS_MOVE, params)
    if moved != len(set(coupon_ids)):
        raise CouponNotHeld(f"{len(coupon_ids) - moved} coupon(s) were not {source}.")


def budget_hold(*, campaign_id: int, amount: int) -> None:
    """Hold `amount` fen of the campaign's budget, or raise BudgetExhausted."""
    if amount <= 0:
        return
    taken = prepared_count(sql.BUDGET_HOLD, [amount, timezone.now(), campaign_id, amount])
    if taken == 0:
        raise BudgetExhausted()


def budget_hold_as_read(*, campaign: Campaign, amount: int) -> None:
    """Hold `amount` fen (0: none) of the campaign's budget, provided its status, window and
    per-customer limit are still those of `campaign` (read unlocked by the caller, whose
    decisions rest on them); or raise BudgetExhausted, for either reason (the caller rolls
    back and decides again under the campaign's lock). Locks the campaign row till commit."""
    params = [amount, timezone.now(), campaign.pk, amount, campaign.status]
    params += [campaign.starts_at, campaign.ends_at, campaign.per_customer_limit]
    if prepared_count(sql.BUDGET_HOLD_AS_READ, params) == 0:
        raise BudgetExhausted()


def budget_release(*, campaign_id: int, amount: int) -> None:
    """Give held budget back. The caller releases each hold once (it closes the hold's row)."""
    if amount > 0:
        prepared_count(sql.BUDGET_RELEASE, [amount, timezone.now(), campaign_id])


def budget_spend(*, campaign_id: int, amount: int) -> None:
    """Turn held budget into spent budget: the orders holding it are paid."""
    if amount > 0:
        prepared_count(sql.BUDGET_SPEND, [amount, amount, timezone.now(), campaign_id])


def budget_refund(*, campaign_id: int, amount: int) -> None:
    """Give a refunded order's discount back to the campaign's budget: spent becomes available
    again. One conditional UPDATE; raises BudgetNotSpent (and gives nothing back) when the
    campaign has spent less than `amount`, which only a bug could cause."""
    if amount <= 0:
        return
    refunded = Campaign.objects.filter(pk=campaign_id, budget_spent__gte=amount).update(
        budget_spent=F("budget_spent") - amount, updated_at=timezone.now()
    )
    if refunded == 0:
        raise BudgetNotSpent()


def coupons_expire(*, now: datetime | None = None) -> int:
    """Mark issued coupons past their validity as expired (the sweep). Returns how many."""
    now = now or timezone.now()
    source, target = Coupon.Status.ISSUED, Coupon.Status.EXPIRED
    if target not in COUPON_ALLOWED[source]:
        raise InvalidTransition(entity="coupon", current=source, target=target)
    return prepared_count(sql.COUPONS_EXPIRE, [now, now])
