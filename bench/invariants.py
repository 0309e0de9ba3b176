"""The invariants every benchmark run checks afterwards (docs/architecture.md, Invariants),
as plain SQL over a database connection plus the gateway's ledger, so a test can plant each
breach in a test database and see it reported.

`check_invariants(connection, ledger, accepted_ids)` returns a list of Violation; empty means
everything held:
- stock: no product with stock < 0 or > stock_total, nor with units held (open holds) and
  sold (paid or refunded orders) above stock_total;
- coupons: no campaign with coupons issued above its total, nor more coupon rows than
  its counter says were issued;
- budget: no campaign whose counters (held + spent) exceed the budget, nor whose holds and
  paid orders, counted row by row, exceed it, nor whose counters disagree with those rows;
- charges: per order at most one succeeded charge in the ledger; every paid order with a
  payable amount has exactly one; every succeeded charge belongs to a paid order or to a
  refund (refunded in full at the gateway), except a reserved order's, whose outcome is on
  its way;
- terminal: every order the load generator saw accepted (2xx) is in a terminal status;
- references: no order names a client, campaign or coupon, nor a line a product, that does
  not exist (those references have no database key: docs/architecture.md, References
  without database keys).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

TERMINAL = ("paid", "rejected", "payment_failed", "cancelled", "expired", "refunded")
# The one status whose order keeps its charge: any other order's charge is given back (a
# refunded order's, and one that succeeded after its order ended unpaid).
KEEPS_ITS_CHARGE = ("paid",)
# A reserved order may have its charge on the way: the terminal check catches it if it stays.
IN_FLIGHT = ("reserved",)
CHECKS = ("stock", "coupons", "budget", "charges", "terminal", "references")
MAX_LISTED = 20  # violations listed per check; the rest are counted in one more line


class Connection(Protocol):
    """Anything with a DB-API cursor(): Django's `connection`, or a psycopg connection."""

    def cursor(self) -> Any: ...


@dataclass(frozen=True)
class Violation:
    check: str  # stock | coupons | budget | charges | terminal | references
    subject: str  # what it is about: "product BENCH-A", "order <uuid>"
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.subject}: {self.detail}"


def check_invariants(
    connection: Connection,
    ledger: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    accepted_ids: Iterable[str] = (),
) -> list[Violation]:
    """Every breach found, grouped by check (see the module docstring).

    `ledger` is the sandbox's `GET /_sandbox/ledger` body, or a function that fetches it:
    then it is called after the database is read, so that on a live system every charge
    behind an order the database calls paid is already in it (run the checks in one
    REPEATABLE READ transaction for a single snapshot).
    """
    with connection.cursor() as cursor:
        found = [*_stock(cursor), *_coupons(cursor), *_budget(cursor), *orphans(cursor)]
        orders = {
            str(public_id): (status, payable)
            for public_id, status, payable in _rows(
                cursor, "SELECT public_id, status, payable FROM orders_order"
            )
        }
        terminal = _terminal(cursor, accepted_ids)
    charges = _charges(orders, ledger() if callable(ledger) else ledger)
    return [*found, *charges, *terminal]


def _rows(cursor: Any, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    cursor.execute(sql, params or [])
    return list(cursor.fetchall())


def _stock(cursor: Any) -> list[Violation]:
    out = [
        Violation("stock", f"product {sku}", f"stock {stock} outside 0..{total}")
        for sku, stock, total in _rows(
            cursor,
            "SELECT sku, stock, stock_total FROM shop_product"
            " WHERE stock < 0 OR stock > stock_total ORDER BY sku",
        )
    ]
    out += [
        Violation(
            "stock",
            f"product {sku}",
            f"{held} units held + {sold} sold > {total} that existed (oversold by "
            f"{held + sold - total})",
        )
        for sku, total, held, sold in _rows(
            cursor,
            """
            SELECT p.sku, p.stock_total,
                   coalesce(sum(l.quantity) FILTER (WHERE o.status = 'reserved'
                                                    AND r.closed_at IS NULL), 0),
                   coalesce(sum(l.quantity) FILTER (WHERE o.status IN ('paid', 'refunded')), 0)
            FROM shop_product p
            JOIN orders_orderline l ON l.product_id = p.id
            JOIN orders_order o ON o.id = l.order_id
            LEFT JOIN orders_reservation r ON r.order_id = o.id
            WHERE o.status IN ('reserved', 'paid', 'refunded')
            GROUP BY p.id, p.sku, p.stock_total
            HAVING coalesce(sum(l.quantity) FILTER (WHERE o.status = 'reserved'
                                                     AND r.closed_at IS NULL), 0)
                 + coalesce(sum(l.quantity) FILTER (WHERE o.status IN ('paid', 'refunded')), 0)
                 > p.stock_total
            ORDER BY p.sku
            """,
        )
    ]
    out += [
        Violation(
            "stock",
            f"product {sku}",
            f"{total - stock} units gone from stock, but {held} are held and {sold} sold",
        )
        for sku, total, stock, held, sold in _rows(
            cursor,
            """
            SELECT p.sku, p.stock_total, p.stock, coalesce(u.held, 0), coalesce(u.sold, 0)
            FROM shop_product p
            LEFT JOIN (
                SELECT l.product_id,
                       sum(l.quantity) FILTER (WHERE o.status = 'reserved'
                                               AND r.closed_at IS NULL) AS held,
                       sum(l.quantity) FILTER (WHERE o.status IN ('paid', 'refunded')) AS sold
                FROM orders_orderline l
                JOIN orders_order o ON o.id = l.order_id
                LEFT JOIN orders_reservation r ON r.order_id = o.id
                WHERE o.status IN ('reserved', 'paid', 'refunded')
                GROUP BY l.product_id
            ) u ON u.product_id = p.id
            WHERE p.stock_total - p.stock <> coalesce(u.held, 0) + coalesce(u.sold, 0)
            ORDER BY p.sku
            """,
        )
    ]
    return out


# Each reference without a database key: (table, column, parent table).
REFERENCES = (
    ("orders_order", "client_id", "shop_apiclient"),
    ("orders_order", "campaign_id", "coupons_campaign"),
    ("orders_order", "coupon_id", "coupons_coupon"),
    ("orders_orderline", "product_id", "shop_product"),
    ("orders_reservation", "campaign_id", "coupons_campaign"),
    ("orders_reservation", "coupon_id", "coupons_coupon"),
    *(
        (child, "order_id", "orders_order")
        for child in (
            "orders_orderline",
            "orders_reservation",
            "orders_payment",
            "orders_refund",
            "orders_orderevent",
            "orders_callbackdelivery",
        )
    ),
)


def orphans(cursor: Any) -> list[Violation]:
    """Rows whose reference names a parent row that does not exist."""
    return [
        Violation("references", f"{table} {row_id}", f"{column} {value}: no such {parent} row")
        for table, column, parent in REFERENCES
        for row_id, value in _rows(
            cursor,
            f"SELECT t.id, t.{column} FROM {table} t"  # noqa: S608 (constants above)
            f" WHERE t.{column} IS NOT NULL"
            f" AND NOT EXISTS (SELECT FROM {parent} p WHERE p.id = t.{column}) ORDER BY t.id",
        )
    ]


def _coupons(cursor: Any) -> list[Violation]:
    """Coupons are counted in the campaign's slices: each within its cap, the caps summing to
    the total, and the coupon rows matching the slices' count."""
    out = [
        Violation("coupons", f"campaign {slug}", f"slice {number}: {issued} issued > cap {cap}")
        for slug, number, issued, cap in _rows(
            cursor,
            """
            SELECT c.slug, s.number, s.issued, s.cap
            FROM coupons_couponslice s JOIN coupons_campaign c ON c.id = s.campaign_id
            WHERE s.issued > s.cap OR s.issued < 0 ORDER BY c.slug, s.number
            """,
        )
    ]
    out += [
        Violation(
            "coupons",
            f"campaign {slug}",
            f"{rows} coupon rows, the slices count {issued} issued of caps summing to {caps},"
            f" {total} total",
        )
        for slug, total, issued, caps, rows in _rows(
            cursor,
            """
            SELECT c.slug, c.coupons_total, coalesce(s.issued, 0), coalesce(s.caps, 0),
                   (SELECT count(*) FROM coupons_coupon k WHERE k.campaign_id = c.id)
            FROM coupons_campaign c
            LEFT JOIN (SELECT campaign_id, sum(issued) AS issued, sum(cap) AS caps
                       FROM coupons_couponslice GROUP BY campaign_id) s ON s.campaign_id = c.id
            ORDER BY c.slug
            """,
        )
        if rows != issued or rows > total or issued > total or caps != total
    ]
    return out


def _budget(cursor: Any) -> list[Violation]:
    out: list[Violation] = []
    rows = _rows(
        cursor,
        """
        SELECT c.slug, c.budget_total, c.budget_held, c.budget_spent,
               coalesce(sum(r.discount) FILTER (WHERE r.closed_at IS NULL), 0),
               coalesce(sum(r.discount) FILTER (WHERE r.outcome = 'sold'
                                                AND o.status = 'paid'), 0)
        FROM coupons_campaign c
        LEFT JOIN orders_reservation r ON r.campaign_id = c.id
        LEFT JOIN orders_order o ON o.id = r.order_id
        GROUP BY c.id, c.slug, c.budget_total, c.budget_held, c.budget_spent
        ORDER BY c.slug
        """,
    )
    for slug, total, held, spent, held_rows, spent_rows in rows:
        subject = f"campaign {slug}"
        if held + spent > total:
            out.append(
                Violation(
                    "budget",
                    subject,
                    f"counters: {held} held + {spent} spent > {total} budget "
                    f"(over by {held + spent - total})",
                )
            )
        if held_rows + spent_rows > total:
            out.append(
                Violation(
                    "budget",
                    subject,
                    f"orders: {held_rows} held by open holds + {spent_rows} of paid orders > "
                    f"{total} budget (over by {held_rows + spent_rows - total})",
                )
            )
        if (held, spent) != (held_rows, spent_rows):
            out.append(
                Violation(
                    "budget",
                    subject,
                    f"counters ({held} held, {spent} spent) disagree with the holds "
                    f"({held_rows} held, {spent_rows} spent by paid orders)",
                )
            )
    return out


def _charges(orders: Mapping[str, tuple[str, int]], ledger: Mapping[str, Any]) -> list[Violation]:
    succeeded = Counter(
        str(c.get("reference")) for c in ledger.get("charges", []) if c.get("status") == "succeeded"
    )
    out = [
        Violation("charges", f"order {ref}", f"{n} succeeded charges (double charge)")
        for ref, n in sorted(succeeded.items())
        if n > 1
    ]
    missing = [
        Violation("charges", f"order {ref}", "paid, but the gateway has no succeeded charge")
        for ref, (status, payable) in orders.items()
        if status == "paid" and payable > 0 and succeeded.get(ref, 0) == 0
    ]
    stray = [
        Violation(
            "charges",
            f"order {c.get('reference')}",
            f"{orders[ref][0]}, yet the gateway kept its charge {c.get('id')} (not refunded)",
        )
        for c in ledger.get("charges", [])
        if c.get("status") == "succeeded"
        and (ref := str(c.get("reference"))) in orders
        and orders[ref][0] not in (*KEEPS_ITS_CHARGE, *IN_FLIGHT)
        and int(c.get("amount_refunded") or 0) < int(c.get("amount") or 0)
    ]
    unknown = [
        Violation("charges", f"reference {ref}", "a succeeded charge for no order we have")
        for ref in succeeded
        if ref not in orders
    ]
    return out + missing + stray + unknown


def _terminal(cursor: Any, accepted_ids: Iterable[str]) -> list[Violation]:
    accepted = set(accepted_ids)
    if not accepted:
        return []
    live = {
        str(public_id): status
        for public_id, status in _rows(
            cursor,
            "SELECT public_id, status FROM orders_order WHERE NOT (status = ANY(%s))",
            [list(TERMINAL)],
        )
    }
    known = {
        str(public_id)
        for (public_id,) in _rows(
            cursor,
            "SELECT public_id FROM orders_order WHERE public_id = ANY(%s::uuid[])",
            [sorted(accepted)],
        )
    }
    out = [
        Violation("terminal", f"order {oid}", f"accepted, still {live[oid]}")
        for oid in sorted(accepted & set(live))
    ]
    out += [
        Violation("terminal", f"order {oid}", "accepted (2xx), but not in the database")
        for oid in sorted(accepted - known)
    ]
    return out


def listed(found: list[Violation], per_check: int = MAX_LISTED) -> list[str]:
    """The violations as lines for a report: at most `per_check` per check, then a count."""
    lines: list[str] = []
    shown: Counter[str] = Counter()
    total = Counter(v.check for v in found)
    for v in found:
        shown[v.check] += 1
        if shown[v.check] <= per_check:
            lines.append(str(v))
        elif shown[v.check] == per_check + 1:
            lines.append(f"[{v.check}] ... and {total[v.check] - per_check} more")
    return lines


def summarize(found: list[Violation]) -> dict[str, int]:
    """Violations per check, every check listed (0 when it held)."""
    counts = Counter(v.check for v in found)
    return {check: counts.get(check, 0) for check in CHECKS}
