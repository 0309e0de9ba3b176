"""Campaigns (time window, coupon stock, money budget, per-customer limit) and issued coupons.

Each status's lifecycle is a table below its model (CAMPAIGN_ALLOWED, COUPON_ALLOWED), checked
by its one move function in `coupons.services`.
"""

from datetime import datetime

from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class Campaign(models.Model):
    class Status(models.TextChoices):
        """What staff set. The public status also depends on the clock: see `status_at`."""

        ACTIVE = "active"
        PAUSED = "paused"
        ENDED = "ended"

    class PublicStatus(models.TextChoices):
        SCHEDULED = "scheduled"
        ACTIVE = "active"
        PAUSED = "paused"
        ENDED = "ended"

    class CouponKind(models.TextChoices):
        FREE_ORDER = "free_order"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # A test campaign is seen, claimed and ordered from by test keys only, a live one by live
    # keys only (docs/integrator-guide.md, Test mode).
    livemode = models.BooleanField(
        default=True, db_default=True, help_text="Off: a test campaign, for test keys only."
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    coupon_valid_until = models.DateTimeField()
    coupon_kind = models.CharField(
        max_length=32, choices=CouponKind.choices, default=CouponKind.FREE_ORDER
    )
    max_discount = models.PositiveBigIntegerField(help_text="Most a coupon takes off, in fen.")
    currency = models.CharField(max_length=3, default="CNY")
    per_customer_limit = models.PositiveIntegerField(default=1)
    backlog_ceiling = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Orders waiting in line beyond which new orders get 429; empty: BACKLOG_CEILING.",
    )
    # Coupons issued are counted in the campaign's CouponSlice rows (their caps sum to this),
    # so that claims do not all update this row: selectors annotate `coupons_issued`.
    coupons_total = models.PositiveBigIntegerField()
    budget_total = models.PositiveBigIntegerField(help_text="In fen.")
    budget_held = models.PositiveBigIntegerField(default=0, help_text="Held by orders in flight.")
    budget_spent = models.PositiveBigIntegerField(default=0, help_text="Discounts of paid orders.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(budget_held__lte=F("budget_total") - F("budget_spent")),
                name="campaign_within_budget",
            ),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="campaign_window"),
            models.CheckConstraint(
                condition=Q(per_customer_limit__gte=1), name="campaign_limit_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def status_at(self, now: datetime) -> str:
        """The public status (docs/integrator-guide.md, Campaigns): staff's setting, bounded
        by the time window."""
        if self.status == self.Status.ENDED or now >= self.ends_at:
            return self.PublicStatus.ENDED
        if self.status == self.Status.PAUSED:
            return self.PublicStatus.PAUSED
        if now < self.starts_at:
            return self.PublicStatus.SCHEDULED
        return self.PublicStatus.ACTIVE

    def is_open_at(self, now: datetime) -> bool:
        return self.status_at(now) == self.PublicStatus.ACTIVE

    @property
    def coupons_remaining(self) -> int:
        """Needs `coupons_issued`, which the campaign selectors annotate (the sum of the
        campaign's slices); an instance read without it raises AttributeError."""
        return self.coupons_total - self.coupons_issued  # type: ignore[attr-defined]

    @property
    def budget_remaining(self) -> int:
        return self.budget_total - self.budget_held - self.budget_spent


C = Campaign.Status
# What staff may do to a campaign (`coupons.services.campaign_move`): pause and resume it, end
# it; an ended campaign is never reopened.
CAMPAIGN_ALLOWED: dict[str, frozenset[str]] = {
    C.ACTIVE: frozenset({C.PAUSED, C.ENDED}),
    C.PAUSED: frozenset({C.ACTIVE, C.ENDED}),
    C.ENDED: frozenset(),
}


class CouponSlice(models.Model):
    """One of a campaign's COUPON_SLICES counters of coupons issued. A claim takes one coupon
    from a slice that has room (one conditional UPDATE), so concurrent claims spread over
    several rows instead of queuing on the campaign's; the caps sum to the campaign's
    `coupons_total` (coupons.services keeps them so, and a deferred constraint trigger checks
    it at commit), and `issued <= cap` makes issuing beyond the total impossible. No
    timestamps: a counter row written by every claim, whose history is the coupons'."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="slices")
    number = models.PositiveSmallIntegerField()
    issued = models.BigIntegerField(default=0)
    cap = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "number"], name="coupon_slice_number"),
            models.CheckConstraint(
                condition=Q(issued__lte=F("cap")), name="coupon_slice_within_cap"
            ),
            models.CheckConstraint(condition=Q(issued__gte=0), name="coupon_slice_issued_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}#{self.number}: {self.issued}/{self.cap}"


class CampaignEvent(models.Model):
    """Append-only record of every change staff or the system made to a campaign."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="events")
    source = models.CharField(max_length=32)
    target = models.CharField(max_length=32)
    actor = models.CharField(max_length=150)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.campaign_id}: {self.source} → {self.target} by {self.actor}"


class Coupon(models.Model):
    """One coupon issued to one customer. Its status moves only with the order that uses it
    (orders record those moves in their own event log)."""

    class Status(models.TextChoices):
        ISSUED = "issued"
        RESERVED = "reserved"
        REDEEMED = "redeemed"
        EXPIRED = "expired"

    # Unique, without the LIKE index Django adds beside a unique CharField (the admin's search
    # is exact). No index of their own on campaign and client: the unique constraints below
    # start with them, and every index costs each claim and each of the coupon's moves (a
    # move is never a HOT update: status is in partial indexes) an entry (coupons 0010).
    code = models.CharField(max_length=32, unique=True)
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="coupons", db_index=False
    )
    client = models.ForeignKey(
        "shop.ApiClient", on_delete=models.PROTECT, related_name="coupons", db_index=False
    )
    customer_id = models.CharField(max_length=64)
    # The customer's n-th coupon of the campaign: unique, so concurrent claims cannot both
    # take the same place under the per-customer limit.
    slot = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ISSUED)
    max_discount = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3, default="CNY")
    valid_until = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "customer_id", "slot"], name="coupon_one_per_customer_slot"
            ),
            models.UniqueConstraint(fields=["client", "idempotency_key"], name="coupon_claim_once"),
            models.CheckConstraint(condition=Q(slot__gte=1), name="coupon_slot_positive"),
        ]
        indexes = [
            models.Index(fields=["customer_id", "campaign"], name="coupon_customer_idx"),
            # The expiry sweep's issued coupons past their validity (coupons.sql.COUPONS_EXPIRE).
            models.Index(
                fields=["valid_until"], condition=Q(status="issued"), name="coupon_issued_until_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def status_at(self, now: datetime) -> str:
        if self.status == self.Status.ISSUED and now >= self.valid_until:
            return self.Status.EXPIRED
        return self.status


CS = Coupon.Status
# A coupon moves with the order that uses it (`coupons.services.holds._coupons_move`, one
# conditional UPDATE for a batch; the orders' event log records why), or expires unused.
COUPON_ALLOWED: dict[str, frozenset[str]] = {
    CS.ISSUED: frozenset({CS.RESERVED, CS.EXPIRED}),
    CS.RESERVED: frozenset({CS.ISSUED, CS.REDEEMED}),  # given back, or paid for
    CS.REDEEMED: frozenset(),
    CS.EXPIRED: frozenset(),
}
