"""The coupons app's hand-written SQL: fixed texts, each prepared once per connection, naming
every table and column through the models (infra.sql.statement: `{C}` is a model's table,
`{C.field}` a field's column, `{C:*}` all its columns; checked against the models and the
database by tests/test_sql_columns.py)."""

from __future__ import annotations

from coupons.models import Campaign, Coupon, CouponSlice
from infra.sql import statement

C, K, S = Campaign, Coupon, CouponSlice

# --- Reads (coupons.selectors) -------------------------------------------------------------
# The reservation worker's locking reads (the ORM compiled them again for every batch, and
# its IN (...) made a text per batch size). They name their columns: a column a migration
# adds is not read.
CAMPAIGN_FOR_UPDATE = statement("SELECT {C:*} FROM {C} WHERE {C.id} = %s FOR NO KEY UPDATE", C=C)
COUPONS_FOR_UPDATE = statement(
    "SELECT {K:*} FROM {K} WHERE {K.id} = ANY(%s) ORDER BY {K.id} FOR NO KEY UPDATE", K=K
)
# The same reads without a lock, for a reservation batch that checks what it read when it
# writes its counters (orders.services.holds: batches of one campaign run side by side).
CAMPAIGN_READ = statement("SELECT {C:*} FROM {C} WHERE {C.id} = %s", C=C)
COUPONS_READ = statement("SELECT {K:*} FROM {K} WHERE {K.id} = ANY(%s)", K=K)
# What intake needs of a coupon (coupons.selectors.CouponTerms, in this order).
COUPON_TERMS = statement(
    "SELECT {K.id}, {K.client_id}, {K.customer_id}, {K.campaign_id}, {K.max_discount} "
    "FROM {K} WHERE {K.code} = %s",
    K=K,
)

# --- The expiry sweep (coupons.services.holds.coupons_expire, every few seconds) ----------
# Issued coupons past their validity, from coupon_issued_until_idx. The statuses are in the
# text: with them as parameters (the ORM's form) a prepared statement's generic plan cannot use
# the partial index, and the sweep read every coupon on every run (docs/soak.md).
COUPONS_EXPIRE = statement(
    "UPDATE {K} SET {K.status} = '{expired}', {K.updated_at} = %s "
    "WHERE {K.status} = '{issued}' AND {K.valid_until} <= %s",
    K=K,
    issued=Coupon.Status.ISSUED.value,
    expired=Coupon.Status.EXPIRED.value,
)

# --- A claim (coupons.services.claims) -----------------------------------------------------
# Takes one coupon from a slice with room and inserts it, in one statement: a unique
# violation on the insert (the customer's slot, a replayed key) rolls the slice's increment
# back with it, and when the campaign is not open, the customer is at the limit or no slice
# has room, nothing is written at all. The campaign row is only read. A claim first looks for
# a slice in an order that starts at a random slice (spreading claims over the rows),
# skipping slices other claims hold locked; only when it found none does it try again
# waiting, taking slices in slice order (so that two waiters cannot each hold what the other
# waits for; a statement that may wait never holds a slice picked in another order).
_CLAIM = """
WITH campaign AS (
    SELECT {C.id}, {C.per_customer_limit}, {C.max_discount}, {C.currency}, {C.coupon_valid_until}
    FROM {C}
    WHERE {C.id} = %(campaign)s AND {C.slug} = %(slug)s AND {C.status} = %(active)s
      AND {C.starts_at} <= %(now)s AND {C.ends_at} > %(now)s
), open AS (
    SELECT campaign.*, held.n + 1 AS {K.slot}
    FROM campaign, (SELECT count(*) AS n FROM {K}
                    WHERE {K.campaign_id} = %(campaign)s AND {K.customer_id} = %(customer)s) AS held
    WHERE held.n < campaign.{C.per_customer_limit}
), pick AS (
    SELECT s.{S.id} FROM {S} s
    WHERE s.{S.campaign_id} = %(campaign)s AND s.{S.issued} < s.{S.cap}
      AND EXISTS (SELECT FROM open)
    ORDER BY {order}
    LIMIT 1 FOR NO KEY UPDATE {skip}
), taken AS (
    UPDATE {S} s SET {S.issued} = s.{S.issued} + 1
    FROM pick WHERE s.{S.id} = pick.{S.id} AND s.{S.issued} < s.{S.cap}
    RETURNING s.{S.id}
)
INSERT INTO {K} ({K.code}, {K.campaign_id}, {K.client_id}, {K.customer_id}, {K.slot}, {K.status},
                 {K.max_discount}, {K.currency}, {K.valid_until}, {K.idempotency_key},
                 {K.created_at}, {K.updated_at})
SELECT %(code)s, open.{C.id}, %(client)s, %(customer)s, open.{K.slot}, %(issued)s,
       open.{C.max_discount}, open.{C.currency}, open.{C.coupon_valid_until}, %(key)s, %(now)s,
       %(now)s
FROM open, taken
RETURNING {K:*}
"""
CLAIM_SKIPPING = statement(
    _CLAIM.replace("{order}", "s.{S.number} < %(start)s, s.{S.number}"),
    C=C, K=K, S=S, skip="SKIP LOCKED",
)  # fmt: skip
CLAIM_WAITING = statement(_CLAIM.replace("{order}", "s.{S.number}"), C=C, K=K, S=S, skip="")

# --- Holds and budget (coupons.services.holds) ---------------------------------------------
# Fixed texts, prepared once per connection: the workers run these for every batch.
COUPONS_MOVE = statement(
    "UPDATE {K} SET {K.status} = %s, {K.updated_at} = %s"
    " WHERE {K.id} = ANY(%s) AND {K.status} = %s",
    K=K,
)
BUDGET_HOLD = statement(
    """
UPDATE {C} SET {C.budget_held} = {C.budget_held} + %s, {C.updated_at} = %s
WHERE {C.id} = %s AND {C.budget_held} <= {C.budget_total} - {C.budget_spent} - %s
""",
    C=C,
)
# The same hold, taken only while the campaign still has the terms a batch read without a
# lock; amount 0 still writes the row, so the check and the row's lock happen either way.
BUDGET_HOLD_AS_READ = statement(
    """
UPDATE {C} SET {C.budget_held} = {C.budget_held} + %s, {C.updated_at} = %s
WHERE {C.id} = %s AND {C.budget_held} <= {C.budget_total} - {C.budget_spent} - %s
  AND {C.status} = %s AND {C.starts_at} = %s AND {C.ends_at} = %s AND {C.per_customer_limit} = %s
""",
    C=C,
)
BUDGET_RELEASE = statement(
    "UPDATE {C} SET {C.budget_held} = {C.budget_held} - %s, {C.updated_at} = %s WHERE {C.id} = %s",
    C=C,
)
BUDGET_SPEND = statement(
    """
UPDATE {C}
SET {C.budget_held} = {C.budget_held} - %s, {C.budget_spent} = {C.budget_spent} + %s,
    {C.updated_at} = %s
WHERE {C.id} = %s
""",
    C=C,
)

# --- Staff controls (coupons.services.campaigns) -------------------------------------------
# Caps for a new total, per slice (slice id, room left), in one statement.
SLICES_RESPREAD = statement(
    "UPDATE {S} s SET {S.cap} = s.{S.issued} + r.room"
    " FROM unnest(%s::bigint[], %s::bigint[]) AS r({S.id}, room) WHERE s.{S.id} = r.{S.id}",
    S=S,
)
