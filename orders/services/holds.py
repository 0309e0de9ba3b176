"""Holds: reserving stock, coupon and budget for received orders in batches, and giving
them back (released) or keeping them (sold) exactly once.

# lock order: order → campaign → coupon → product → payment. Several batches of one campaign
# run at once (one per worker lane, orders.services.nudges), so a batch does not lock the
# campaign, coupons or products while it works. It locks its orders (SKIP LOCKED) and takes
# a transaction-scoped advisory lock per customer (try, never wait: the orders of a customer
# another batch holds stay in line for the next batch), so no two batches judge one
# customer's limit or coupon at once. It reads campaign, coupons and stock unlocked, decides,
# writes the orders' moves, and only then moves the counters, as its last statements, in lock
# order: budget (a conditional UPDATE that also checks the campaign's terms it read), coupons
# (issued → reserved), stock (stock >= units). Batches so queue only for those few
# statements and the commit. If any counter refuses (another batch took the last units or
# budget meanwhile, or staff changed the campaign), the batch rolls back to a savepoint taken
# after its orders' and customers' locks, and decides the same orders again the old way,
# under the campaign's, coupons' and products' locks from the start. The
# database constraints (stock >= 0, budget within total, one open hold per coupon) stop
# anything the Python misses.
# Every lock is FOR NO KEY UPDATE: it excludes other workers just the same, but not the
# FOR KEY SHARE that a claim's INSERT takes on its campaign (the coupon's key), so claims
# never wait for a batch to commit. An order's INSERT takes no lock on its parents at all:
# they are references without a database key (docs/architecture.md), which is why a batch
# treats a coupon or product it cannot read as invalid or out of stock.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from coupons import selectors as coupons_selectors
from coupons import services as coupons_services
from coupons.errors import BudgetExhausted, CouponNotHeld
from coupons.models import Campaign, Coupon
from infra.sql import prepared_count, prepared_rows
from orders import metrics, selectors, sql, waiting_line
from orders.models import PARKED, PARKING_ALLOWED, Order, OrderLine, Reservation, parking_state
from orders.services.nudges import RESERVE, drain, nudge_payments, nudge_reservations, recruit
from orders.services.transitions import orders_move, orders_park
from shop import selectors as shop_selectors
from shop import services as shop_services
from shop.errors import OutOfStock
from shop.models import Product

R = Order.Reason
log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    reserved: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    deferred: int = 0  # locked, but every customer's orders were another batch's to decide

    @property
    def seen(self) -> int:
        return self.reserved + sum(self.rejected.values())


@dataclass
class _Budget:
    """Running tallies for one batch, checked in queue order (first come, first served)."""

    stock: dict[int, int]
    budget_left: int
    coupons_taken: set[int] = field(default_factory=set)
    orders_per_customer: dict[str, int] = field(default_factory=dict)


class _Contended(Exception):
    """A counter refused what an unlocked batch decided: decide again under the locks."""


def reservations_take_batch(
    *, campaign_id: int | None, limit: int, recruit: Callable[[], object] | None = None
) -> BatchResult:
    """Reserve or reject up to `limit` received orders of one campaign's line, oldest first,
    in one transaction. While the campaign is paused its line waits (nothing is taken),
    until its window is over: then its orders are rejected campaign_not_active, as an ended
    campaign's are, so that a line paused and never resumed still comes to an end. After
    commit: the line's positions move up, payments and callbacks are nudged.
    Safe to run twice or concurrently: each order is taken by one batch, each customer's
    orders by one batch at a time; batches of one campaign overlap and queue only for their
    counters (see the lock order note above). A full batch calls `recruit` (another worker
    for the line) before its work. Reserved orders stay in the campaign's line
    (orders.waiting_line) until their payment makes them final."""
    result = BatchResult()
    with transaction.atomic():
        orders = selectors.received_orders_for_update(campaign_id=campaign_id, limit=limit)
        if not orders:
            return result
        if recruit is not None and len(orders) >= limit:
            recruit()
        if campaign_id is not None:
            locked_orders = len(orders)
            orders = _customers_ours(campaign_id, orders)
            if not orders:
                result.deferred = locked_orders
                return result
        # The same orders either way: a batch that lost a race for the counters keeps its
        # place in line (its orders' and customers' locks were taken before the savepoint).
        # What the first try moved in memory is put back (its rows and its after-commit
        # work went with the savepoint).
        before = [(o.status, o.reason, o.updated_at) for o in orders]
        try:
            with transaction.atomic():
                return _decide(campaign_id, orders, locked=False)
        except _Contended as contended:
            log.info(
                "reservation batch of %s decided again under locks: %s", campaign_id, contended
            )
            for order, (status, reason, updated_at) in zip(orders, before, strict=True):
                order.status, order.reason, order.updated_at = status, reason, updated_at
            return _decide(campaign_id, orders, locked=True)


def _decide(campaign_id: int | None, orders: list[Order], *, locked: bool) -> BatchResult:
    """Reserve or reject the batch's `orders` (locked by the caller), reading the campaign,
    coupons and stock unlocked and checking them at the counters, or (`locked`) locking them
    first. Raises _Contended when a counter refuses an unlocked decision."""
    now = timezone.now()
    result = BatchResult()
    campaign, lines, coupons, products = _batch_reads(campaign_id, orders, locked=locked)
    if (
        campaign is not None
        and campaign.status == Campaign.Status.PAUSED
        and now < campaign.ends_at
    ):
        # Staff paused the campaign: accepted orders wait in line; resuming drains them.
        return result
    tally = _Budget(
        stock={pid: p.stock for pid, p in products.items()},
        budget_left=campaign.budget_remaining if campaign else 0,
        orders_per_customer=_orders_per_customer(campaign, orders),
    )
    reserved: list[Order] = []
    rejected: dict[str, list[Order]] = defaultdict(list)
    for order in orders:
        reason = _verdict(
            order, lines[order.pk], campaign=campaign, coupons=coupons, tally=tally, now=now
        )
        if reason:
            rejected[reason].append(order)
        else:
            reserved.append(order)

    _reservations_insert(reserved, now)
    orders_move(reserved, Order.Status.RESERVED, actor="worker:reserve", now=now, lines=lines)
    for reason, group in rejected.items():
        orders_move(
            group,
            Order.Status.REJECTED,
            actor="worker:reserve",
            now=now,
            reason=reason,
            lines=lines,
        )
    # The counters last: from here to the commit is all that batches of one campaign wait
    # for each other.
    try:
        _counters_take(reserved, lines, campaign, checked=not locked)
    except (BudgetExhausted, CouponNotHeld, OutOfStock) as exc:
        if locked:
            raise
        raise _Contended(type(exc).__name__) from exc

    result.reserved = len(reserved)
    result.rejected = {reason: len(group) for reason, group in rejected.items()}
    if reserved:
        transaction.on_commit(nudge_payments)
    return result


def _batch_reads(
    campaign_id: int | None, orders: Sequence[Order], *, locked: bool
) -> tuple[Campaign | None, dict[int, list[OrderLine]], dict[int, Coupon], dict[int, Product]]:
    """What a batch decides on: its campaign, lines, coupons and products, locked in lock
    order (`locked`) or read as committed now."""
    campaign = None
    if campaign_id is not None and locked:
        campaign = coupons_selectors.campaign_for_update(campaign_id=campaign_id)
    elif campaign_id is not None:
        campaign = coupons_selectors.campaign_read(campaign_id=campaign_id)
    lines = selectors.lines_by_order(o.pk for o in orders)
    coupon_ids = {o.coupon_id for o in orders if o.coupon_id}
    product_ids = {line.product_id for order_lines in lines.values() for line in order_lines}
    if locked:
        coupons = coupons_selectors.coupons_for_update(coupon_ids=coupon_ids)
        products = shop_selectors.products_for_update(product_ids)
    else:
        coupons = coupons_selectors.coupons_read(coupon_ids=coupon_ids)
        products = shop_selectors.products_read(product_ids)
    return campaign, lines, coupons, products


def _customers_ours(campaign_id: int, orders: list[Order]) -> list[Order]:
    """The orders whose customer this transaction could take the advisory lock of (try, never
    wait); the others stay received, for a batch after the one that holds their customer."""
    customers = sorted({o.customer_id for o in orders})
    ours = {row[0] for row in prepared_rows(sql.CUSTOMERS_LOCK, [customers, campaign_id])}
    return [o for o in orders if o.customer_id in ours]


def _orders_per_customer(campaign: Campaign | None, orders: Sequence[Order]) -> dict[str, int]:
    """How many of the campaign's orders each customer in the batch already holds or bought.
    Read through order_shopper_idx (campaign, customer; held or sold orders only): a few
    rows per customer. Through (campaign, status) it filtered every sold order of the
    campaign, which grow all campaign long: 259 ms a batch at 137,000 orders."""
    if campaign is None:
        return {}
    customers = sorted({o.customer_id for o in orders})
    return dict(prepared_rows(sql.PER_CUSTOMER, [campaign.pk, customers]))


def _verdict(
    order: Order,
    lines: list[OrderLine],
    *,
    campaign: Campaign | None,
    coupons: dict[int, Coupon],
    tally: _Budget,
    now: datetime,
) -> str:
    """The rejection reason for this order, or "" when it can be held; on "" the tallies
    are charged for it. Checked in the order the reasons are most useful to a shopper
    (docs/integrator-guide.md, Order statuses)."""
    coupon = coupons.get(order.coupon_id) if order.coupon_id else None
    if order.coupon_code and coupon is None:
        return R.COUPON_INVALID
    if campaign is not None:
        reason = _campaign_problem(order, campaign, coupon, tally, now)
        if reason:
            return reason
    reason = _stock_problem(lines, tally)
    if reason:
        return reason
    if campaign is not None and order.discount > tally.budget_left:
        return R.BUDGET_EXHAUSTED

    for line in lines:
        tally.stock[line.product_id] -= line.quantity
    if campaign is not None and coupon is not None:
        tally.budget_left -= order.discount
        tally.coupons_taken.add(coupon.pk)
        customer = order.customer_id
        tally.orders_per_customer[customer] = tally.orders_per_customer.get(customer, 0) + 1
    return ""


def _campaign_problem(
    order: Order, campaign: Campaign, coupon: Coupon | None, tally: _Budget, now: datetime
) -> str:
    if not campaign.is_open_at(now):
        return R.CAMPAIGN_NOT_ACTIVE
    if coupon is None or (coupon.customer_id, coupon.client_id) != (
        order.customer_id,
        order.client_id,
    ):
        return R.COUPON_INVALID
    if coupon.status_at(now) == Coupon.Status.EXPIRED:
        return R.COUPON_EXPIRED
    if coupon.status != Coupon.Status.ISSUED or coupon.pk in tally.coupons_taken:
        return R.COUPON_IN_USE
    if tally.orders_per_customer.get(order.customer_id, 0) >= campaign.per_customer_limit:
        return R.LIMIT_REACHED
    return ""


def _stock_problem(lines: list[OrderLine], tally: _Budget) -> str:
    for line in lines:
        left = tally.stock.get(line.product_id, 0)
        if left <= 0:
            return R.SOLD_OUT
        if left < line.quantity:
            return R.OUT_OF_STOCK
    return ""


def _counters_take(
    orders: Sequence[Order],
    lines: dict[int, list[OrderLine]],
    campaign: Campaign | None,
    *,
    checked: bool,
) -> None:
    """Budget, coupons and stock for the reserved `orders`, in lock order. `checked`: the
    campaign was read unlocked, so its row is written (and its terms checked) even when no
    order was reserved. Raises BudgetExhausted, CouponNotHeld or OutOfStock."""
    if campaign is not None and checked:
        amount = sum(o.discount for o in orders)
        coupons_services.budget_hold_as_read(campaign=campaign, amount=amount)
    if not orders:
        return
    if campaign is not None:
        if not checked:
            coupons_services.budget_hold(
                campaign_id=campaign.pk, amount=sum(o.discount for o in orders)
            )
        coupons_services.coupons_hold(coupon_ids=[o.coupon_id for o in orders if o.coupon_id])
    shop_services.stock_take(quantities=_units_by_product(orders, lines))


def _reservations_insert(orders: Sequence[Order], now: datetime) -> None:
    if not orders:
        return
    # No deadline yet: the hold's clock starts at the first payment attempt (holds_clock_start).
    prepared_count(
        sql.RESERVATIONS_INSERT,
        [
            now,
            now,
            [o.pk for o in orders],
            [o.campaign_id for o in orders],
            [o.coupon_id for o in orders],
            [o.discount for o in orders],
        ],
    )


def holds_clock_start(order_ids: Sequence[int], *, now: datetime) -> None:
    """Start the hold's clock of these orders (locked by the caller): their first payment
    attempt is being made, and from now the gateway has HOLD_SECONDS to take the charge
    before the sweep may expire the order. Waiting in our own payment line never counts."""
    if order_ids:
        deadline = now + timedelta(seconds=settings.HOLD_SECONDS)
        prepared_count(sql.HOLDS_CLOCK_START, [deadline, now, list(order_ids)])


def _units_by_product(orders: Sequence[Order], lines: dict[int, list[OrderLine]]) -> dict[int, int]:
    units: dict[int, int] = defaultdict(int)
    for order in orders:
        for line in lines[order.pk]:
            units[line.product_id] += line.quantity
    return units


def holds_close(orders: Sequence[Order], *, outcome: str, now: datetime) -> None:
    """Close the open holds of `orders` (locked by the caller): `sold` keeps stock taken,
    turns held budget into spent and redeems the coupon; `released` gives all three back.

    Exactly once per hold: only rows still open are closed, and only what was closed is
    given back or spent.
    """
    if not orders:
        return
    rows = prepared_rows(sql.HOLDS_CLOSE, [now, str(outcome), now, [o.pk for o in orders]])
    closed = [_Closed(*row) for row in rows]
    if not closed:
        return
    budget_by_campaign: dict[int, int] = defaultdict(int)
    for hold in closed:
        if hold.campaign_id:
            budget_by_campaign[hold.campaign_id] += hold.discount
    coupon_ids = [h.coupon_id for h in closed if h.coupon_id]
    sold = outcome == Reservation.Outcome.SOLD
    for campaign_id in sorted(budget_by_campaign):
        move = coupons_services.budget_spend if sold else coupons_services.budget_release
        move(campaign_id=campaign_id, amount=budget_by_campaign[campaign_id])
    if sold:
        coupons_services.coupons_redeem(coupon_ids=coupon_ids)
    else:
        coupons_services.coupons_release(coupon_ids=coupon_ids)
        held = selectors.lines_by_order(h.order_id for h in closed)
        shop_services.stock_return(
            quantities=_units_by_product([o for o in orders if o.pk in held], held)
        )


class _Closed(NamedTuple):
    """A hold `holds_close` closed: what it gives back or spends."""

    order_id: int
    campaign_id: int | None
    coupon_id: int | None
    discount: int


def reservations_drain(*, campaign_id: int | None, lane: int = 0) -> int:
    """The reservation worker's loop over one campaign's line, holding the nudge mark of
    `lane`. Returns orders seen. Its batches log their size at INFO, with the lane."""
    name = waiting_line.queue_name(campaign_id)
    helper = partial(recruit, RESERVE, name, campaign_id)

    def step() -> int:
        with metrics.batch("reserve") as size:
            size.append(
                _take_isolating_poison(campaign_id, settings.RESERVATION_BATCH_SIZE, helper)
            )
        if size[0]:
            log.info("reservation batch: campaign %s lane %s, %s orders", name, lane, size[0])
        return size[0]

    return drain(
        RESERVE,
        name,
        step,
        renudge=partial(nudge_reservations, campaign_id, force=True, lane=lane),
        linger=settings.RESERVATION_LINGER_SECONDS,
        fill=settings.RESERVATION_BATCH_SIZE,
        lane=lane,
    )


def _take_isolating_poison(
    campaign_id: int | None, limit: int, helper: Callable[[], object] | None = None
) -> int:
    """Take a batch; if it fails for a reason other than the database being unreachable, try
    ever smaller batches from the head of the line until the one order that fails alone is
    found, and park it. A poison order never blocks its campaign's line. Orders deferred (their
    customers held by another batch) count as seen, so the loop looks again at once."""
    try:
        taken = reservations_take_batch(campaign_id=campaign_id, limit=limit, recruit=helper)
        return taken.seen + taken.deferred
    except (OperationalError, InterfaceError):
        raise  # the database is unreachable: nothing to blame on an order
    except SoftTimeLimitExceeded:
        raise  # the batch ran out of time (a lock held elsewhere): nor is this
    except Exception as exc:
        if limit > 1:
            log.warning("reservation batch of %s failed; retrying smaller", limit, exc_info=True)
            return _take_isolating_poison(campaign_id, limit // 2)
        order_id = selectors.oldest_waiting(campaign_id=campaign_id)
        if order_id is None:
            raise
        log.exception("parking order %s: it fails on its own", order_id)
        order_park(order_id=order_id, reason=f"{type(exc).__name__}: {exc}"[:2000])
        return 1


@transaction.atomic
def order_park(*, order_id: int, reason: str, actor: str = "worker:reserve") -> None:
    """Take a received order out of its line for staff to look at (see order_unpark)."""
    order = selectors.orders_for_update(order_ids=[order_id])[0]
    if PARKED not in PARKING_ALLOWED[parking_state(order)]:
        return  # taken meanwhile, or parked already
    orders_park([order], PARKED, actor=actor, now=timezone.now(), reason=reason)
    metrics.parked("order")
    transaction.on_commit(partial(waiting_line.tickets_done, order.campaign_id, 1))
