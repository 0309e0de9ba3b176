"""The service's answers as frozen dataclasses.

Statuses, reasons and error codes stay plain strings, never enums: the service may add new
ones within v1 and a client must carry on when it meets one it does not know (the
integrator's guide, "Order statuses"). Fields the service adds later are ignored here but
kept in each object's `raw`, the JSON as it came.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

_T = TypeVar("_T")


class OrderStatus:
    """The order statuses of API v1 (more may come: compare with these, never exhaustively)."""

    RECEIVED = "received"
    RESERVED = "reserved"
    PAID = "paid"
    REJECTED = "rejected"
    PAYMENT_FAILED = "payment_failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUNDED = "refunded"

    IN_FLIGHT = frozenset({RECEIVED, RESERVED})


class CouponStatus:
    ISSUED = "issued"
    RESERVED = "reserved"
    REDEEMED = "redeemed"
    EXPIRED = "expired"


def _time(value: str | None) -> datetime | None:
    # fromisoformat reads "+00:00"; "Z" only from Python 3.11 on, so it is swapped first.
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _required_time(value: str) -> datetime:
    moment = _time(value)
    if moment is None:
        raise ValueError("a time is missing")
    return moment


@dataclass(frozen=True)
class OrderLine:
    """One line of an order: `unit_price` (fen) is fixed when the order is taken."""

    sku: str
    quantity: int
    unit_price: int | None = None


@dataclass(frozen=True)
class Order:
    """An order as `GET /api/v1/orders/{id}/` answers it. Money is in fen.

    `queue_position` and `estimated_wait_seconds` are its place in the campaign's line (both
    0 once it is final). `replayed` is True when `place_order` was answered 200: the key had
    been used before and this is the order it made then.
    """

    id: str
    status: str
    reason: str | None
    customer_id: str
    items: tuple[OrderLine, ...]
    subtotal: int
    discount: int
    payable: int
    currency: str
    coupon_code: str | None
    created_at: datetime
    updated_at: datetime
    queue_position: int
    estimated_wait_seconds: int
    replayed: bool = False
    livemode: bool = True  # False: a test order, placed with a test key (cop_test_...)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_final(self) -> bool:
        """Final: the status will not change again (except `paid` to `refunded` by staff).
        A status this client does not know yet is taken as final: it is not an in-flight one."""
        return self.status not in OrderStatus.IN_FLIGHT

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, replayed: bool = False) -> Order:
        queue = data.get("queue") or {}
        return cls(
            id=data["id"],
            status=data["status"],
            reason=data.get("reason"),
            customer_id=data["customer_id"],
            items=tuple(
                OrderLine(sku=i["sku"], quantity=i["quantity"], unit_price=i.get("unit_price"))
                for i in data["items"]
            ),
            subtotal=data["subtotal"],
            discount=data["discount"],
            payable=data["payable"],
            currency=data["currency"],
            coupon_code=data.get("coupon_code"),
            created_at=_required_time(data["created_at"]),
            updated_at=_required_time(data["updated_at"]),
            queue_position=int(queue.get("position", 0)),
            estimated_wait_seconds=int(queue.get("estimated_wait_seconds", 0)),
            replayed=replayed,
            livemode=bool(data.get("livemode", True)),  # absent before the service's 1.2.0
            raw=dict(data),
        )


@dataclass(frozen=True)
class Coupon:
    """A coupon issued to a shopper: give its `code` as `coupon_code` when placing the order."""

    code: str
    campaign: str
    customer_id: str
    status: str
    max_discount: int
    currency: str
    valid_until: datetime
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Coupon:
        return cls(
            code=data["code"],
            campaign=data["campaign"],
            customer_id=data["customer_id"],
            status=data["status"],
            max_discount=data["max_discount"],
            currency=data["currency"],
            valid_until=_required_time(data["valid_until"]),
            raw=dict(data),
        )


@dataclass(frozen=True)
class CouponTerms:
    kind: str
    max_discount: int
    currency: str


@dataclass(frozen=True)
class Backlog:
    """The campaign's line right now: worth telling a shopper before they order at a peak."""

    orders_waiting: int
    estimated_wait_seconds: int


@dataclass(frozen=True)
class Campaign:
    slug: str
    name: str
    status: str
    starts_at: datetime
    ends_at: datetime
    coupon_valid_until: datetime
    coupon: CouponTerms
    per_customer_limit: int
    coupons_total: int
    coupons_remaining: int
    budget_total: int
    budget_remaining: int
    backlog: Backlog
    livemode: bool = True  # False: a test campaign, seen by test keys only
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Campaign:
        terms, backlog = data["coupon"], data.get("backlog") or {}
        return cls(
            slug=data["slug"],
            name=data["name"],
            status=data["status"],
            starts_at=_required_time(data["starts_at"]),
            ends_at=_required_time(data["ends_at"]),
            coupon_valid_until=_required_time(data["coupon_valid_until"]),
            coupon=CouponTerms(
                kind=terms["kind"], max_discount=terms["max_discount"], currency=terms["currency"]
            ),
            per_customer_limit=data["per_customer_limit"],
            coupons_total=data["coupons_total"],
            coupons_remaining=data["coupons_remaining"],
            budget_total=data["budget_total"],
            budget_remaining=data["budget_remaining"],
            backlog=Backlog(
                orders_waiting=int(backlog.get("orders_waiting", 0)),
                estimated_wait_seconds=int(backlog.get("estimated_wait_seconds", 0)),
            ),
            livemode=bool(data.get("livemode", True)),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    store: str
    price: int
    currency: str
    in_stock: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Product:
        return cls(
            sku=data["sku"],
            name=data["name"],
            store=data["store"],
            price=data["price"],
            currency=data["currency"],
            in_stock=data["in_stock"],
        )


def _cursor(url: str | None) -> str | None:
    """The `cursor` of a page link: the service's links are opaque URLs, the cursor in them
    is what the next call passes on."""
    if not url:
        return None
    values = parse_qs(urlsplit(url).query).get("cursor")
    return values[0] if values else None


@dataclass(frozen=True)
class Page(Generic[_T]):
    """One page of a cursor-paginated list: pass `next_cursor` to the same call for more."""

    results: tuple[_T, ...]
    next_cursor: str | None
    previous_cursor: str | None

    @classmethod
    def from_links(cls, results: tuple[_T, ...], data: Mapping[str, Any]) -> Page[_T]:
        return cls(
            results=results,
            next_cursor=_cursor(data.get("next")),
            previous_cursor=_cursor(data.get("previous")),
        )
