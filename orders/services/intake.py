"""Taking an order in: the lean path the chatbot waits on.

For a new order: one SELECT of the coupon (when one is named), one Redis script (rate
limits, a place in line, the nudge mark, the position), one INSERT of the order and its
lines; after commit a coalesced nudge. Products and campaign terms come from short-lived
per-process copies. Nothing that can wait is done here: every rule on stock, coupon and
budget is the reservation worker's, under locks.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from coupons import selectors as coupons_selectors
from coupons.errors import BudgetExhausted, CampaignNotActive
from coupons.models import Campaign
from infra.errors import IdempotencyKeyReused, InvalidInput, Overloaded
from infra.sql import new_object, prepared_rows
from orders import selectors, sql, waiting_line
from orders.errors import LineFull
from orders.models import Order, OrderLine
from orders.services.nudges import RESERVE, nudge_reservations
from shop import selectors as shop_selectors
from shop.errors import OutOfStock, ProductSoldOut
from shop.models import Product, RateLimit


@dataclass(frozen=True)
class ItemIn:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Placed:
    order: Order
    lines: list[OrderLine]
    created: bool
    queue: waiting_line.QueueSpot


def request_fingerprint(
    *, customer_id: str, items: list[ItemIn], coupon_code: str, callback_url: str
) -> str:
    """What makes two requests "the same body" for an Idempotency-Key
    (docs/integrator-guide.md, Idempotency)."""
    canonical = json.dumps(
        [customer_id, [[i.sku, i.quantity] for i in items], coupon_code, callback_url],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def order_place(
    *,
    client_id: int,
    customer_id: str,
    items: list[ItemIn],
    coupon_code: str = "",
    callback_url: str = "",
    idempotency_key: str,
    livemode: bool = True,
) -> Placed:
    """Store a `received` order and queue it. A replay of the key returns the first order
    (created=False); the key with another body raises IdempotencyKeyReused. Unknown SKUs or
    a SKU listed twice raise InvalidInput. Hopeless orders are refused without storing
    anything: ProductSoldOut, OutOfStock, CampaignNotActive (paused, ended, not started),
    BudgetExhausted; Overloaded (429) when the client or the customer is over its rate limit,
    LineFull (429) when the campaign's line is at its backlog ceiling. Nudges the campaign's
    reservations once the order is committed.

    Round trips for a new order: one SELECT of the coupon (when one is named), one Redis
    script (limits, ticket, nudge mark, position), one INSERT of the order with its lines; a
    replay is found by that INSERT's conflict, not by a look-up first. Products and campaign
    terms come from short per-process copies: the worker checks everything again under locks.

    A coupon that is unknown, or not this customer's, is kept as typed and the order is
    rejected `coupon_invalid` by the worker, like every other reason, so that the chatbot
    learns all outcomes the same way.

    Test mode (docs/integrator-guide.md): `livemode` is the key's. A key sees only products
    and campaigns of its own mode (a SKU of the other mode is unknown, a coupon of the other
    mode's campaign is not this client's), so a test order never holds live stock, coupons
    or budget; the order carries the mode, which picks its gateway. A replayed key of the
    other mode's order raises IdempotencyKeyReused.
    """
    fingerprint = request_fingerprint(
        customer_id=customer_id, items=items, coupon_code=coupon_code, callback_url=callback_url
    )
    skus = [i.sku for i in items]
    if len(set(skus)) != len(skus):
        raise InvalidInput(
            "Each SKU may appear once.", fields={"items": ["Each SKU may appear once."]}
        )
    try:
        terms = _terms(client_id, customer_id, items, coupon_code, livemode)
    except (ProductSoldOut, OutOfStock, CampaignNotActive, BudgetExhausted, InvalidInput):
        # A replay is answered with its order whatever has changed since
        # (docs/integrator-guide.md, Idempotency).
        replay = _replay(client_id, idempotency_key, fingerprint, livemode)
        if replay is None:
            raise
        return replay

    admission = _admit(client_id, customer_id, terms.campaign, idempotency_key)
    if admission is None:  # the key was seen moments ago: a replay, or its twin in flight
        replay = _replay(client_id, idempotency_key, fingerprint, livemode)
        if replay is not None:
            return replay
        admission = _admit(client_id, customer_id, terms.campaign, idempotency_key, seen=True)
    now = timezone.now()
    order = new_object(
        Order,
        client_id=client_id,
        customer_id=customer_id,
        campaign_id=terms.campaign.pk if terms.campaign else None,
        coupon_id=terms.coupon_id,
        coupon_code=coupon_code,
        subtotal=terms.subtotal,
        discount=terms.discount,
        payable=terms.subtotal - terms.discount,
        callback_url=callback_url,
        livemode=livemode,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        queue_ticket=admission.ticket,
        created_at=now,
        updated_at=now,
    )
    lines = [
        new_object(
            OrderLine,
            product_id=terms.products[i.sku].pk,
            sku=i.sku,
            quantity=i.quantity,
            unit_price=terms.products[i.sku].price,
        )
        for i in items
    ]
    try:
        created = _insert(order, lines)
    except BaseException:
        # The script took the nudge mark before the INSERT, so that an order costs one Redis
        # round trip; an INSERT that failed (a database error, the request's time limit) would
        # leave it held for NUDGE_TTL_SECONDS with nothing published, and an idle line would
        # wait that long for the next order's wake-up. Taking the mark after the commit would
        # cost every order a second round trip; a failure pays one instead. Only a process
        # killed outright still leaves it held: the sweep nudges that line, as for any crash
        # between commit and publish.
        if admission.nudge:
            waiting_line.nudge_release(RESERVE, waiting_line.queue_name(order.campaign_id))
        raise
    if admission.nudge:
        # The mark is ours: publish even for a replay, or nobody would until it expires. The
        # INSERT committed on its own (or the caller's transaction commits it first).
        transaction.on_commit(
            partial(nudge_reservations, order.campaign_id, force=True), robust=True
        )
    if not created:
        waiting_line.ticket_void(order.campaign_id)
        replay = _replay(client_id, idempotency_key, fingerprint, livemode)
        if replay is None:  # the row with this key is gone again: nothing to return
            raise IdempotencyKeyReused()
        return replay
    for line in lines:
        line.order = order
    return Placed(order=order, lines=lines, created=True, queue=admission.spot)


def _insert(order: Order, lines: list[OrderLine]) -> bool:
    """INSERT the order with its lines; False (nothing written) when its key is taken."""
    o = order
    rows = prepared_rows(
        sql.ORDER_INSERT,
        [
            o.public_id, o.client_id, o.customer_id, o.campaign_id, o.coupon_id,
            o.coupon_code, o.status, o.subtotal, o.discount, o.payable, o.currency,
            o.callback_url, o.idempotency_key, o.request_hash, o.queue_ticket,
            o.created_at, o.updated_at, o.request_id, o.livemode,
            [line.product_id for line in lines], [line.sku for line in lines],
            [line.quantity for line in lines], [line.unit_price for line in lines],
        ],
    )  # fmt: skip
    if not rows:
        return False
    order.pk = rows[0][0]
    order._state.adding = False
    return True


@dataclass(frozen=True)
class _Terms:
    products: dict[str, Product]
    subtotal: int
    campaign: Campaign | None
    coupon_id: int | None
    discount: int


def _terms(
    client_id: int, customer_id: str, items: list[ItemIn], coupon_code: str, livemode: bool
) -> _Terms:
    """Prices, the coupon's campaign and discount; refuses unknown SKUs and hopeless orders.
    Products and campaigns of the other mode than the key's do not exist for it."""
    products = {
        sku: p
        for sku, p in shop_selectors.products_by_sku_cached([i.sku for i in items]).items()
        if p.livemode == livemode
    }
    unknown = [i.sku for i in items if i.sku not in products]
    if unknown:
        raise InvalidInput(
            f"Unknown SKU: {', '.join(unknown)}.",
            fields={"items": [f"Unknown SKU {s!r}." for s in unknown]},
        )
    _refuse_if_out_of_stock(items, products)
    subtotal = sum(products[i.sku].price * i.quantity for i in items)
    coupon = coupons_selectors.coupon_terms(code=coupon_code) if coupon_code else None
    if coupon is None or coupon.client_id != client_id or coupon.customer_id != customer_id:
        return _Terms(products, subtotal, campaign=None, coupon_id=None, discount=0)
    campaign = coupons_selectors.campaign_terms(campaign_id=coupon.campaign_id)
    if campaign.livemode != livemode:  # the worker rejects it coupon_invalid, like any other
        return _Terms(products, subtotal, campaign=None, coupon_id=None, discount=0)
    discount = min(subtotal, coupon.max_discount)
    _refuse_if_campaign_cannot_serve(campaign, discount)
    return _Terms(products, subtotal, campaign=campaign, coupon_id=coupon.id, discount=discount)


def _admit(
    client_id: int,
    customer_id: str,
    campaign: Campaign | None,
    idempotency_key: str,
    *,
    seen: bool = False,
) -> waiting_line.Admission | None:
    """The client's and the customer's rate limits, a place in the campaign's line, the
    nudge mark: one Redis round trip. None: the key was seen moments ago (unless `seen`, when
    the caller found no order for it and it must be judged as new). Raises Overloaded or
    LineFull (both 429)."""
    campaign_id = campaign.pk if campaign else None
    ceiling = _ceiling(campaign)
    key_mark = "" if seen else hashlib.sha256(f"{client_id}:{idempotency_key}".encode()).hexdigest()
    for _ in range(2):
        admission = waiting_line.admit(
            campaign_id,
            client_bucket=f"client:{client_id}",
            client_limit=_limit(RateLimit.Scope.CLIENT_REQUESTS),
            customer_bucket=f"customer:{client_id}:{customer_id}",
            customer_limit=_limit(RateLimit.Scope.CUSTOMER_REQUESTS),
            ceiling=ceiling,
            longest_wait=settings.LINE_MAX_WAIT_SECONDS,
            nudge_kind=RESERVE,
            request_key=key_mark,
            request_key_seconds=settings.IDEMPOTENCY_MARK_SECONDS,
        )
        if admission.outcome == waiting_line.ADMIT_REPLAY:
            return None
        if admission.outcome != waiting_line.ADMIT_LINE_UNKNOWN:
            break
        # Redis lost the line (a restart): put it back from the database, once.
        last, live = selectors.queue_tickets(campaign_id=campaign_id)
        waiting_line.queue_rebuild(campaign_id, last_ticket=last, live=live)
    if admission.outcome == waiting_line.ADMIT_REFUSED:
        raise Overloaded(retry_after=max(1, math.ceil(admission.retry_after)))
    if admission.outcome == waiting_line.ADMIT_LINE_FULL:
        raise LineFull(retry_after=_line_full_retry(admission, ceiling))
    if admission.outcome == waiting_line.ADMIT_LINE_UNKNOWN:
        return waiting_line.Admission(
            outcome=waiting_line.ADMIT_OK
        )  # no place in line; the sweep copes
    return admission


def _line_full_retry(admission: waiting_line.Admission, ceiling: int) -> int:
    """Seconds until a full line has room again at its measured drain: the time for the
    orders over what it may hold to become final, and at least for a tenth of what it may
    hold, so that refused shoppers do not all come back in the same second."""
    rate = admission.rate or settings.QUEUE_ASSUMED_DRAIN_RATE
    allowed = settings.LINE_MAX_WAIT_SECONDS * rate
    if ceiling > 0:
        allowed = min(allowed, ceiling)
    over = max(admission.waiting - allowed, allowed / 10, 1)
    return max(1, math.ceil(over / rate))


def _limit(scope: str) -> tuple[float | None, int]:
    limit = shop_selectors.rate_limit(scope)
    return limit.per_second, limit.burst


# Hopeless orders are answered at once from rows intake reads anyway: nothing is written,
# nothing queued. The worker checks everything again under locks; these only save the wait.


def _refuse_if_out_of_stock(items: list[ItemIn], products: dict[str, Product]) -> None:
    for item in items:
        left = products[item.sku].stock
        if left <= 0:
            raise ProductSoldOut(f"{item.sku} is sold out.")
        if left < item.quantity:
            raise OutOfStock(f"Only {left} of {item.sku} left.")


def _refuse_if_campaign_cannot_serve(campaign: Campaign, discount: int) -> None:
    if not campaign.is_open_at(timezone.now()):
        raise CampaignNotActive()  # paused, ended or not started
    if campaign.budget_remaining < discount:
        raise BudgetExhausted()


def _ceiling(campaign: Campaign | None) -> int:
    if campaign is not None and campaign.backlog_ceiling is not None:
        return campaign.backlog_ceiling
    return settings.BACKLOG_CEILING


def _replay(
    client_id: int, idempotency_key: str, fingerprint: str, livemode: bool
) -> Placed | None:
    order = selectors.order_by_key(client_id=client_id, idempotency_key=idempotency_key)
    if order is None:
        return None
    if order.request_hash != fingerprint or order.livemode != livemode:
        raise IdempotencyKeyReused()
    lines = selectors.lines_by_order([order.pk]).get(order.pk, [])
    return Placed(order=order, lines=lines, created=False, queue=selectors.order_queue_spot(order))
