"""Orders and what happens to them: lines, holds (reservations), payments, refunds, callbacks,
events.

Every lifecycle is a table below the model it governs (ORDER_ALLOWED, PARKING_ALLOWED,
PAYMENT_ALLOWED, REFUND_ALLOWED), and has one move function in `orders.services.transitions`
that checks it under the row lock and writes the OrderEvent: nothing else writes events.
"""

import uuid

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from infra.logs import current_request_id


class Order(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received"
        RESERVED = "reserved"
        PAID = "paid"
        REJECTED = "rejected"
        PAYMENT_FAILED = "payment_failed"
        CANCELLED = "cancelled"
        EXPIRED = "expired"
        REFUNDED = "refunded"

    class Reason(models.TextChoices):
        SOLD_OUT = "sold_out"
        OUT_OF_STOCK = "out_of_stock"
        COUPON_INVALID = "coupon_invalid"
        COUPON_EXPIRED = "coupon_expired"
        COUPON_IN_USE = "coupon_in_use"
        LIMIT_REACHED = "limit_reached"
        BUDGET_EXHAUSTED = "budget_exhausted"
        CAMPAIGN_NOT_ACTIVE = "campaign_not_active"
        # Expired: the gateway kept refusing the charge (quota, key in flight) for the whole
        # hold, counted from the first payment attempt (docs/integrator-guide.md).
        PAYMENT_TIMEOUT = "payment_timeout"

    # The sequential pk orders the queue (first come, first served); the public id is opaque.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # No index of their own on client and campaign: the unique (client, key), the customer
    # index and the campaign ones below start with them, and every index is paid for by every
    # INSERT and every status change (a status change is never a HOT update here). None on
    # coupon either: nothing reads orders by coupon (a coupon is never deleted, so not even
    # PROTECT's check runs), and it cost an entry per insert and per move (orders 0016).
    # client, campaign and coupon (and a line's product) are references without a database
    # foreign key: each key's check took FOR KEY SHARE on the same few parent rows for every
    # order: MultiXacts that cost intake 0.43 ms of PostgreSQL CPU per order against 0.17
    # without them (docs/performance.md, "Hot rows and group commit"). No orphan appears:
    # those parents are never deleted (a trigger refuses it, orders migration 0012), and
    # the values come from rows intake read (docs/architecture.md, "References without
    # database keys"). PROTECT still stops the ORM's deletes before they reach the trigger.
    client = models.ForeignKey(
        "shop.ApiClient",
        on_delete=models.PROTECT,
        related_name="orders",
        db_index=False,
        db_constraint=False,
    )
    customer_id = models.CharField(max_length=64)
    campaign = models.ForeignKey(
        "coupons.Campaign",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="orders",
        db_index=False,
        db_constraint=False,
    )
    coupon = models.ForeignKey(
        "coupons.Coupon",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="orders",
        db_index=False,
        db_constraint=False,
    )
    # The code as the client sent it, kept even when it names no coupon (then rejected).
    coupon_code = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    reason = models.CharField(max_length=32, choices=Reason.choices, blank=True, default="")
    subtotal = models.PositiveBigIntegerField()
    discount = models.PositiveBigIntegerField(default=0)
    payable = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3, default="CNY")
    # The mode of the key that placed it (docs/integrator-guide.md, Test mode), copied at
    # intake so that every later stage (settlement's gateway, figures, the admin) knows it
    # without a join.
    livemode = models.BooleanField(default=True, db_default=True)
    callback_url = models.URLField(max_length=500, blank=True, default="")
    idempotency_key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical request.")
    queue_ticket = models.BigIntegerField(null=True, blank=True)
    # The X-Request-ID of the request that placed it (infra.logs), so that one order can be
    # followed from the chatbot's POST through the workers' log lines to its callbacks.
    # db_default: rows inserted in SQL, not through the ORM (bulk seeding), get "".
    request_id = models.CharField(
        max_length=64, blank=True, default=current_request_id, db_default=""
    )
    # A received order whose batch kept failing is parked (out of the line) for staff.
    parked_at = models.DateTimeField(null=True, blank=True)
    park_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "idempotency_key"], name="order_placed_once"),
            models.CheckConstraint(
                condition=Q(payable=F("subtotal") - F("discount")), name="order_payable_adds_up"
            ),
            models.CheckConstraint(
                condition=Q(discount__lte=F("subtotal")), name="order_discount_within_subtotal"
            ),
        ]
        indexes = [
            # The queue: received orders of a campaign, oldest first (partial, so it stays small).
            models.Index(
                fields=["campaign", "id"], condition=Q(status="received"), name="order_queue_idx"
            ),
            # The payment stage's line: reserved orders, oldest first. Partial, so a batch read
            # walks the orders waiting for payment, never the millions already finished.
            models.Index(fields=["id"], condition=Q(status="reserved"), name="order_settle_idx"),
            # The sweep: live orders nobody touched for a while.
            models.Index(
                fields=["updated_at"],
                condition=Q(status__in=["received", "reserved"]),
                name="order_live_idx",
            ),
            models.Index(fields=["client", "customer_id", "-id"], name="order_customer_idx"),
            # The per-customer limit: a batch counts its customers' held and sold orders.
            models.Index(
                fields=["campaign", "customer_id"],
                condition=Q(status__in=["reserved", "paid"]),
                name="order_shopper_idx",
            ),
            # Rebuilding a campaign's line after Redis lost it reads the highest ticket.
            models.Index(fields=["campaign", "queue_ticket"], name="order_ticket_idx"),
            # The admin's test-mode filter (partial: live orders add no entry).
            models.Index(fields=["id"], condition=Q(livemode=False), name="order_test_idx"),
        ]

    def __str__(self) -> str:
        return f"order {self.public_id}"


S = Order.Status
ORDER_ALLOWED: dict[str, frozenset[str]] = {
    S.RECEIVED: frozenset({S.RESERVED, S.REJECTED, S.CANCELLED}),
    S.RESERVED: frozenset({S.PAID, S.PAYMENT_FAILED, S.CANCELLED, S.EXPIRED}),
    S.PAID: frozenset({S.REFUNDED}),  # staff only
    S.REJECTED: frozenset(),
    S.PAYMENT_FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
    S.REFUNDED: frozenset(),
}
TERMINAL: frozenset[str] = frozenset(s for s, nxt in ORDER_ALLOWED.items() if not nxt) | {S.PAID}
# What the table lets staff and clients ask for (see `cancel_refusal` for the whole rule).
CANCELLABLE: frozenset[str] = frozenset(s for s, nxt in ORDER_ALLOWED.items() if S.CANCELLED in nxt)
REFUNDABLE: frozenset[str] = frozenset(s for s, nxt in ORDER_ALLOWED.items() if S.REFUNDED in nxt)

# Parking: a received order whose batch kept failing is taken out of its line for staff
# (`parked_at` set), and put back at its head. A place, not a status: the client still sees
# `received`. Its events read received → parked and parked → received.
PARKED = "parked"
PARKING_ALLOWED: dict[str, frozenset[str]] = {
    **{status: frozenset() for status in S.values},
    S.RECEIVED: frozenset({PARKED}),
    PARKED: frozenset({S.RECEIVED}),
}

# A campaign's line: its received orders, less the parked ones. The one definition: the
# reservation worker's locking read and the line's oldest order are written from it
# (orders.sql.CAMPAIGN_LINE_FOR_UPDATE, OLDEST_IN_CAMPAIGN_LINE).
LINE: dict[str, object] = {"status": S.RECEIVED, "parked_at__isnull": True}

# The source of a move that creates its row (a payment's first attempt, a refund asked for).
NEW = ""


def parking_state(order: "Order") -> str:
    """Where the order stands for parking: PARKED while out of its line, else its status."""
    if order.parked_at is not None and order.status == S.RECEIVED:
        return PARKED
    return order.status


# Every row that names an order (its lines, hold, payment, refund, events, callbacks) does
# so without a database key (orders 0018): each key's check locked the order row again at
# commit, and orders are never deleted (docs/architecture.md, "References without database
# keys"). CASCADE and PROTECT below are the ORM's, which never deletes an order either.
class OrderLine(models.Model):
    # Read by order through order_line_once_per_product, which starts with it: no index of its
    # own (orders 0016).
    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="lines", db_index=False, db_constraint=False
    )
    # No database key, as for the order's parents above, and no index: nothing reads lines
    # by product.
    product = models.ForeignKey(
        "shop.Product",
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    sku = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField()
    unit_price = models.PositiveBigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["order", "product"], name="order_line_once_per_product"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="order_line_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"


class Reservation(models.Model):
    """The hold an order has on stock (its lines), its coupon and campaign budget.

    Its clock (`expires_at`) starts at the order's first payment attempt, not when the hold is
    taken: an order waiting in our own payment line is never expired for our slowness.

    Closed exactly once: `sold` when paid, `released` when given back (the conditional
    update on `closed_at IS NULL` is what makes a release count once).
    """

    class Outcome(models.TextChoices):
        SOLD = "sold"
        RELEASED = "released"

    order = models.OneToOneField(
        Order, on_delete=models.CASCADE, related_name="reservation", db_constraint=False
    )
    # No index on campaign or coupon: holds are read by order, and a release's coupon through
    # reservation_coupon_once while open (orders 0016). No database key either, as for the
    # order's (orders 0017): the batch that opens the hold has just written both rows, and
    # they are never deleted (docs/architecture.md, "References without database keys").
    campaign = models.ForeignKey(
        "coupons.Campaign",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    coupon = models.ForeignKey(
        "coupons.Coupon",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    discount = models.PositiveBigIntegerField(default=0)
    # None until the first payment attempt starts the clock (orders.services.settlement).
    expires_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # A coupon is held by at most one order at a time, whatever the code does.
            models.UniqueConstraint(
                fields=["coupon"],
                condition=Q(closed_at__isnull=True),
                name="reservation_coupon_once",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=Q(closed_at__isnull=True),
                name="reservation_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"hold for order {self.order_id}"


class Payment(models.Model):
    """One per order, whatever the retries: every attempt carries the same idempotency key."""

    class Status(models.TextChoices):
        PENDING = "pending"  # claimed by a worker, the call is (about to be) in flight
        SUCCEEDED = "succeeded"
        DECLINED = "declined"
        UNKNOWN = "unknown"  # time-out or 5xx: settled by asking the gateway, never by guessing
        RETRY = "retry"  # the gateway said "not now" (429, key in flight): nothing charged
        NOT_REQUIRED = "not_required"  # payable 0
        PARKED = "parked"  # gave up after PAYMENT_MAX_ATTEMPTS; the hold stays; staff replay

    order = models.OneToOneField(
        Order, on_delete=models.PROTECT, related_name="payment", db_constraint=False
    )
    # Unique, without the LIKE index (varchar_pattern_ops) Django adds beside a unique
    # CharField: nothing searches keys by prefix (orders 0016).
    idempotency_key = models.CharField(max_length=100, unique=True)
    amount = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3, default="CNY")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    charge_id = models.CharField(max_length=100, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "unknown", "retry"]),
                name="payment_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"payment {self.idempotency_key} ({self.status})"


P = Payment.Status
PAYMENT_ALLOWED: dict[str, frozenset[str]] = {
    NEW: frozenset({P.PENDING, P.NOT_REQUIRED}),  # the first attempt; or nothing to pay
    P.PENDING: frozenset({P.SUCCEEDED, P.DECLINED, P.UNKNOWN, P.RETRY, P.PARKED}),
    P.UNKNOWN: frozenset({P.PENDING, P.SUCCEEDED, P.DECLINED}),
    P.RETRY: frozenset({P.PENDING}),
    P.PARKED: frozenset({P.UNKNOWN}),  # staff replay: its outcome is looked up first
    P.SUCCEEDED: frozenset(),
    P.DECLINED: frozenset(),
    P.NOT_REQUIRED: frozenset(),
}
# A charge in flight, or made: its outcome decides the order, which cannot be cancelled
# meanwhile. `retry` is not among them: the gateway took nothing, and no attempt is running.
PAYMENT_AT_STAKE: frozenset[str] = frozenset({P.PENDING, P.UNKNOWN, P.SUCCEEDED, P.PARKED})


def cancel_refusal(order_status: str, payment_status: str | None) -> str:
    """Can this order be cancelled? "" when it can, else why not. One rule for the API, the
    admin and the services: its status allows the move to cancelled (ORDER_ALLOWED), and no
    money is at stake on its payment, if it has one."""
    if order_status not in CANCELLABLE:
        return f"The order is {order_status}."
    if payment_status in PAYMENT_AT_STAKE:
        return "A payment for this order is in progress."
    return ""


class Refund(models.Model):
    """A charge given back through the gateway: a paid order's, asked for by staff, or one that
    succeeded after its order had ended unpaid (expired, cancelled), asked for by the payments
    worker and the sweep (orders.services.settlement). One per order, ever: every ask sends the
    same idempotency key, so the gateway refunds at most once."""

    class Status(models.TextChoices):
        PENDING = "pending"  # asked; the gateway's answer is awaited
        SUCCEEDED = "succeeded"  # refunded: a paid order moved to `refunded` with it
        FAILED = "failed"  # the gateway refused: nothing moved
        UNKNOWN = "unknown"  # no definite answer: the order stays paid; asking again is safe

    order = models.OneToOneField(
        Order, on_delete=models.PROTECT, related_name="refund", db_constraint=False
    )
    idempotency_key = models.CharField(max_length=100, unique=True)
    charge_id = models.CharField(max_length=100, blank=True, default="")
    amount = models.PositiveBigIntegerField(help_text="In fen; 0 when nothing was charged.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    refund_id = models.CharField(max_length=100, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"refund {self.idempotency_key} ({self.status})"


RS = Refund.Status
REFUND_ALLOWED: dict[str, frozenset[str]] = {
    NEW: frozenset({RS.PENDING}),
    # pending → pending: asked again while an earlier ask's answer is still out (its page died
    # mid-call, or two staff asked at once): the same key goes out, the gateway answers once.
    RS.PENDING: frozenset({RS.PENDING, RS.SUCCEEDED, RS.FAILED, RS.UNKNOWN}),
    RS.UNKNOWN: frozenset({RS.PENDING, RS.SUCCEEDED, RS.FAILED}),
    RS.FAILED: frozenset({RS.PENDING}),  # staff may ask again
    RS.SUCCEEDED: frozenset(),
}


class OrderEvent(models.Model):
    """Append-only: every move of an order, its place in line, its payment and its refund, with
    who made it. Written only by the move functions of `orders.services.transitions`; payment
    and refund moves read `payment:<status>` and `refund:<status>` (`:` alone: no row yet)."""

    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="events", db_constraint=False
    )
    source = models.CharField(max_length=32)
    target = models.CharField(max_length=32)
    actor = models.CharField(max_length=150)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.order_id}: {self.source} → {self.target}"


class CallbackDelivery(models.Model):
    """One signed POST of an order's new status to the client's callback_url."""

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # given up after CALLBACK_RETRY_HOURS of retries
        # Never sent: a newer status of the same order was pending at once, and one POST
        # carries the latest (docs/integrator-guide.md, Callbacks). Terminal statuses are
        # never superseded.
        SUPERSEDED = "superseded"

    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="callbacks", db_constraint=False
    )
    url = models.URLField(max_length=500)
    order_status = models.CharField(max_length=16)
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(state="pending"),
                name="callback_due_idx",
            ),
            # An order's pending deliveries: whether an older one is still pending (the claim)
            # or a newer one follows (coalescing), one probe per due delivery.
            models.Index(
                fields=["order", "id"], condition=Q(state="pending"), name="callback_pending_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"callback {self.order_status} for order {self.order_id}"
