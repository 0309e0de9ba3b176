"""What psycopg costs to send a batch's arrays, in its text and its binary format: the ten
callback rows (order document as JSONB, URL, times, a null column) that a reservation or
settlement batch writes through infra.sql.rows_insert. Python only, no database traffic.

Usage: .venv/bin/python -m bench.array_dump [rows] [repeats]
"""

from __future__ import annotations

import sys
import timeit
from datetime import UTC, datetime

import psycopg
from psycopg.adapt import PyFormat, Transformer
from psycopg.types.json import Jsonb

DOCUMENT = {
    "id": "5a0fa01a-22dd-482f-b9c3-a841549f9b6f",
    "status": "reserved",
    "reason": "",
    "customer_id": "c-123",
    "items": [{"sku": "SKU-1", "quantity": 1, "unit_price": 3000}],
    "subtotal": 3000,
    "discount": 2500,
    "payable": 500,
    "currency": "CNY",
    "coupon_code": "ABCD-EFGH",
    "created_at": "2026-12-04T14:00:00+00:00",
    "updated_at": "2026-12-04T14:00:01+00:00",
    "queue": {"position": 3, "estimated_wait_seconds": 1},
}


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 2000  # noqa: PLR2004
    now = datetime.now(UTC)
    columns = [
        list(range(rows)), ["https://chatbot.example/cb"] * rows, ["reserved"] * rows,
        [Jsonb(DOCUMENT)] * rows, ["pending"] * rows, [0] * rows, [now] * rows, [""] * rows,
        [None] * rows, [now] * rows, [now] * rows,
    ]  # fmt: skip
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as connection:
        for fmt in (PyFormat.TEXT, PyFormat.BINARY):
            seconds = timeit.timeit(
                lambda fmt=fmt: Transformer(connection).dump_sequence(
                    columns, [fmt] * len(columns)
                ),
                number=repeats,
            )
            print(f"{fmt.name.lower():<6} {seconds / repeats * 1e6:7.1f} µs per batch of {rows}")


if __name__ == "__main__":
    main()
