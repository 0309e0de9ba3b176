"""The catalogue's hand-written SQL: fixed texts, each prepared once per connection, naming
every table and column through the models (infra.sql.statement; checked against the models
by tests/test_sql_columns.py)."""

from __future__ import annotations

from infra.sql import statement
from shop.models import Product

# Products' stock as committed now, unlocked, and the same locked in id order; the
# reservation worker runs them every batch.
PRODUCTS_READ = statement(
    "SELECT {p.id}, {p.sku}, {p.stock} FROM {p} WHERE {p.id} = ANY(%s)", p=Product
)
PRODUCTS_FOR_UPDATE = statement(
    "SELECT {p.id}, {p.sku}, {p.stock} FROM {p} WHERE {p.id} = ANY(%s) ORDER BY {p.id} "
    "FOR NO KEY UPDATE",
    p=Product,
)
# Units taken (only where that many are left: the count says whether) and given back, one
# product a statement, in id order (shop.services: the caller's loop keeps the lock order).
STOCK_TAKE = statement(
    "UPDATE {p} SET {p.stock} = {p.stock} - %s, {p.updated_at} = %s "
    "WHERE {p.id} = %s AND {p.stock} >= %s",
    p=Product,
)
STOCK_RETURN = statement(
    "UPDATE {p} SET {p.stock} = {p.stock} + %s, {p.updated_at} = %s WHERE {p.id} = %s",
    p=Product,
)
