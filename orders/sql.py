"""The orders app's hand-written SQL: fixed texts, each prepared once per connection, naming
every table and column through the models (infra.sql.statement: `{O}` is a model's table,
`{O.field}` a field's column, `{O:*}` all its columns, `{O:o.*}` the same after `o.`;
checked against the models and the database by tests/test_sql_columns.py). Constants of the
code (statuses) are written into the texts, never a request's value: every value is a
parameter."""

from __future__ import annotations

from coupons.models import Campaign
from infra.sql import matching, statement
from orders.models import LINE, CallbackDelivery, Order, OrderEvent, OrderLine, Payment, Reservation
from shop.models import ApiClient

_STATUS = {
    "received": Order.Status.RECEIVED.value,
    "reserved": Order.Status.RESERVED.value,
    "paid": Order.Status.PAID.value,
}

# A payment still open: its first attempt in flight, or to be tried or asked about again
# (payment_open_idx holds these).
_PAYMENT_OPEN = {
    "pending": Payment.Status.PENDING.value,
    "unknown": Payment.Status.UNKNOWN.value,
    "retry": Payment.Status.RETRY.value,
}

# --- Intake (orders.services.intake) -------------------------------------------------------
# One statement, so one round trip and atomic on its own: the order and its lines, or
# nothing when the (client, Idempotency-Key) is taken (then it is a replay, or a race lost).
ORDER_INSERT = statement(
    """
WITH o AS (
  INSERT INTO {O} ({O.public_id}, {O.client_id}, {O.customer_id}, {O.campaign_id}, {O.coupon_id},
    {O.coupon_code}, {O.status}, {O.reason}, {O.subtotal}, {O.discount}, {O.payable}, {O.currency},
    {O.callback_url}, {O.idempotency_key}, {O.request_hash}, {O.queue_ticket}, {O.park_reason},
    {O.created_at}, {O.updated_at}, {O.request_id}, {O.livemode})
  VALUES (%s, %s, %s, %s, %s, %s, %s, '', %s, %s, %s, %s, %s, %s, %s, %s, '', %s, %s, %s, %s)
  ON CONFLICT ON CONSTRAINT order_placed_once DO NOTHING
  RETURNING {O.id}
), l AS (
  INSERT INTO {L} ({L.order_id}, {L.product_id}, {L.sku}, {L.quantity}, {L.unit_price})
  SELECT o.{O.id}, x.{L.product_id}, x.{L.sku}, x.{L.quantity}, x.{L.unit_price}
  FROM o, unnest(%s::bigint[], %s::text[], %s::int[], %s::bigint[])
       AS x({L.product_id}, {L.sku}, {L.quantity}, {L.unit_price})
)
SELECT {O.id} FROM o
""",
    O=Order,
    L=OrderLine,
)

# --- Reads (orders.selectors) --------------------------------------------------------------
# A replayed order POST reads its first answer back by the key (the ORM's query compiler cost
# more than the look-up, at one request in twenty in the benchmark).
# The polled order GET (and a cancel) finds the order by its public id: as hot as placing it
# (docs/performance.md, "The web layer on the hot endpoints").
ORDER_BY_PUBLIC_ID = statement(
    "SELECT {O:*} FROM {O} WHERE {O.public_id} = %s AND {O.client_id} = %s AND {O.livemode} = %s",
    O=Order,
)
ORDER_BY_KEY = statement(
    "SELECT {O:*} FROM {O} WHERE {O.client_id} = %s AND {O.idempotency_key} = %s", O=Order
)
# The workers' batch reads: the ORM would compile each again for every batch (a fifth of the
# settlement worker's time went to building and compiling these queries), and its
# `IN (%s, %s, ...)` gives each batch size a statement text of its own, which PostgreSQL must
# parse and plan anew; `= ANY(%s)` takes the batch as one array. Rows come back as model
# objects (infra.sql.prepared_objects). Every read names its columns, so a column a migration
# adds is not read.
LINES_BY_ORDER = statement(
    "SELECT {L:*} FROM {L} WHERE {L.order_id} = ANY(%s) ORDER BY {L.order_id}, {L.id}", L=OrderLine
)
ORDERS_FOR_UPDATE = statement(
    "SELECT {O:*} FROM {O} WHERE {O.id} = ANY(%s) ORDER BY {O.id} FOR NO KEY UPDATE", O=Order
)
RESERVATIONS_BY_ORDER = statement(
    "SELECT {R:*} FROM {R} WHERE {R.order_id} = ANY(%s)", R=Reservation
)
PAYMENTS_BY_ORDER = statement("SELECT {P:*} FROM {P} WHERE {P.order_id} = ANY(%s)", P=Payment)
# Statuses are written into the text, not passed: a prepared statement's generic plan can then
# use the partial indexes whose predicates name them. The reserved orders are walked in id
# order through order_settle_idx (reserved only), each one's payment looked up by the unique
# index on order_id, until the batch is full: a batch costs the orders waiting for payment,
# never the orders already final. Through the primary key, at 360,000 orders it filtered out
# 181,886 rows a batch; written as a join, the planner hashed every payment ever made (a
# sequential scan of orders_payment, 277 ms a batch at a million orders). OFFSET 0 keeps the
# NOT EXISTS a per-row lookup rather than a join. An order is due when it has no payment yet,
# or its payment is open and due again (a payment is one per order).
ORDERS_DUE_FOR_PAYMENT = statement(
    """
    SELECT {O:o.*} FROM {O} o
    WHERE o.{O.status} = '{reserved}'
      AND NOT EXISTS (
        SELECT 1 FROM {P} p
        WHERE p.{P.order_id} = o.{O.id}
          AND NOT (p.{P.status} IN ('{pending}', '{unknown}', '{retry}')
                   AND p.{P.next_attempt_at} <= %s)
        OFFSET 0)
    ORDER BY o.{O.id} LIMIT %s
    FOR NO KEY UPDATE OF o SKIP LOCKED""",
    O=Order,
    P=Payment,
    reserved=_STATUS["reserved"],
    **_PAYMENT_OPEN,
)
# A campaign's line (orders.models.LINE), its oldest orders locked; rows another worker holds
# are skipped, not waited for.
_LINE_FOR_UPDATE = """
    SELECT {O:*} FROM {O}
    WHERE {O.campaign_id} {campaign} AND %s
    ORDER BY {O.id} LIMIT %%s
    FOR NO KEY UPDATE SKIP LOCKED""" % matching("O", LINE)  # noqa: S608, UP031 (constants only)
CAMPAIGN_LINE_FOR_UPDATE = statement(_LINE_FOR_UPDATE, O=Order, campaign="= %s")
NO_CAMPAIGN_LINE_FOR_UPDATE = statement(_LINE_FOR_UPDATE, O=Order, campaign="IS NULL")
# A line's oldest order (the admin's pages; the order parked when a batch of one fails), also
# written from LINE: with the status as a parameter, the generic plan PostgreSQL turns to after
# a prepared statement's fifth run cannot use order_queue_idx (partial on status = 'received')
# and walked every order of the campaign in id order: 1 s a backlog page at 3 million orders.
_OLDEST_IN_LINE = """
    SELECT {O.id}, {O.public_id}, {O.created_at} FROM {O}
    WHERE {O.campaign_id} {campaign} AND %s
    ORDER BY {O.id} LIMIT 1""" % matching("O", LINE)  # noqa: S608, UP031 (constants only)
OLDEST_IN_CAMPAIGN_LINE = statement(_OLDEST_IN_LINE, O=Order, campaign="= %s")
OLDEST_IN_NO_CAMPAIGN_LINE = statement(_OLDEST_IN_LINE, O=Order, campaign="IS NULL")

# The campaign page's figures (orders.selectors.campaign_minutes): orders accepted per minute
# in an id range, and orders paid per minute with their accept-to-paid times. OFFSET 0 keeps
# the lookup of each paid order a nested loop over the primary key: the window holds few of
# the table's orders, and a hash join would read them all.
MINUTES_ACCEPTED = statement(
    """
    SELECT floor(date_part('epoch', {O.created_at}) / 60)::bigint, count(*)
    FROM {O}
    WHERE {O.id} >= %s AND {O.id} < %s AND {O.campaign_id} = %s
      AND {O.created_at} >= %s AND {O.created_at} < %s
    GROUP BY 1
    """,
    O=Order,
)
MINUTES_PAID = statement(
    """
    SELECT floor(date_part('epoch', e.{E.created_at}) / 60)::bigint,
           floor(ln(greatest(date_part('epoch', e.{E.created_at} - o.{O.created_at}) * 1000, 1))
                 / ln(%s))::int,
           count(*)
    FROM {E} e
    CROSS JOIN LATERAL (
      SELECT {O.created_at} FROM {O}
      WHERE {O.id} = e.{E.order_id} AND {O.campaign_id} = %s OFFSET 0
    ) o
    WHERE e.{E.target} = '{paid}' AND e.{E.created_at} >= %s AND e.{E.created_at} < %s
    GROUP BY 1, 2
    """,
    O=Order,
    E=OrderEvent,
    paid=_STATUS["paid"],
)
# The first id created at or after a moment, by bisecting the primary key in one recursive
# query: about twenty index probes inside PostgreSQL, whatever the table's size. For tables
# whose rows are inserted with their creation time, so that ids and times grow together.
_FIRST_ID_FROM = """
    WITH RECURSIVE b(lo, hi) AS (
      SELECT min({O.id}), max({O.id}) FROM {O}
      UNION ALL
      SELECT CASE WHEN p.at >= %(moment)s THEN b.lo ELSE (b.lo + b.hi) / 2 + 1 END,
             CASE WHEN p.at >= %(moment)s THEN (b.lo + b.hi) / 2 ELSE b.hi END
      FROM b CROSS JOIN LATERAL (
        SELECT {O.created_at} AS at FROM {O}
        WHERE {O.id} >= (b.lo + b.hi) / 2 ORDER BY {O.id} LIMIT 1
      ) p
      WHERE b.lo < b.hi
    )
    SELECT o.{O.id} FROM {O} o
    WHERE o.{O.id} >= (SELECT max(lo) FROM b) AND o.{O.created_at} >= %(moment)s
    ORDER BY o.{O.id} LIMIT 1
    """
FIRST_ORDER_ID_FROM = statement(_FIRST_ID_FROM, O=Order)
# A delivery is inserted when its order's status changes, with that time (resending one
# updates it in place): the same bisection finds a time range's deliveries.
FIRST_CALLBACK_ID_FROM = statement(_FIRST_ID_FROM, O=CallbackDelivery)

# --- The sweep (orders.services.lifecycle.pipeline_sweep, every few seconds) ---------------
# Is anything due? Each status is in the text, so the partial index that holds only those rows
# (payment_open_idx, order_settle_idx, callback_due_idx) serves every run: with the statuses
# as parameters (the ORM's form), a prepared statement's generic plan cannot use a partial
# index, and under an EXISTS's LIMIT a walk of the whole table looked cheap to it. In the
# 2-million-order soak those forms read all of orders_payment and orders_callbackdelivery on
# every sweep, slower with every order (docs/soak.md).
PAYMENTS_DUE_EXIST = statement(
    """
SELECT EXISTS (
  SELECT 1 FROM {O} o
  WHERE o.{O.status} = '{reserved}' AND o.{O.updated_at} < %s
    AND NOT EXISTS (SELECT 1 FROM {P} p WHERE p.{P.order_id} = o.{O.id})
) OR EXISTS (
  SELECT 1 FROM {P} p JOIN {O} o ON o.{O.id} = p.{P.order_id}
  WHERE p.{P.status} IN ('{pending}', '{unknown}', '{retry}') AND p.{P.next_attempt_at} <= %s
    AND o.{O.status} = '{reserved}'
)""",
    O=Order,
    P=Payment,
    reserved=_STATUS["reserved"],
    **_PAYMENT_OPEN,
)
CALLBACKS_DUE_EXIST = statement(
    "SELECT EXISTS (SELECT 1 FROM {D} WHERE {D.state} = '{pending}' AND {D.next_attempt_at} <= %s)",
    D=CallbackDelivery,
    pending=CallbackDelivery.State.PENDING.value,
)
# Which lines to look at, in the same form for the same reason (the ORM's forms of these four
# walked all of orders_order under a generic plan: a whole table per sweep, found in the
# 2-million-order soak of 2026-12-07; docs/soak.md). Read from order_live_idx, order_queue_idx
# and order_settle_idx, so bounded by the orders in flight.
STALE_RECEIVED_CAMPAIGNS = statement(
    "SELECT DISTINCT {O.campaign_id} FROM {O} "
    "WHERE {O.status} = '{received}' AND {O.updated_at} < %s",
    O=Order,
    **_STATUS,
)
# A paused campaign whose window is still open keeps its orders waiting on purpose (the
# COALESCE keeps orders of no campaign, whose join finds nothing).
WAITING_CAMPAIGNS = statement(
    """
SELECT DISTINCT o.{O.campaign_id} FROM {O} o LEFT JOIN {K} k ON k.{K.id} = o.{O.campaign_id}
WHERE o.{O.status} = '{received}'
  AND NOT COALESCE(k.{K.status} = '{paused}' AND k.{K.ends_at} > %s, false)""",
    O=Order,
    K=Campaign,
    paused=Campaign.Status.PAUSED.value,
    **_STATUS,
)
# Per line, the orders held whose payment is being retried, given up on (parked) or not
# known: read from the held orders (order_settle_idx), each payment by its order.
LINES_ASIDE = statement(
    """
SELECT o.{O.campaign_id}, count(*) FROM {O} o JOIN {P} p ON p.{P.order_id} = o.{O.id}
WHERE o.{O.status} = '{reserved}' AND p.{P.status} IN ('{retry}', '{unknown}', '{parked}')
GROUP BY o.{O.campaign_id}""",
    O=Order,
    P=Payment,
    reserved=_STATUS["reserved"],
    retry=Payment.Status.RETRY.value,
    unknown=Payment.Status.UNKNOWN.value,
    parked=Payment.Status.PARKED.value,
)
LIVE_CAMPAIGNS = statement(
    "SELECT DISTINCT {O.campaign_id} FROM {O} WHERE {O.status} IN ('{received}', '{reserved}')",
    O=Order,
    **_STATUS,
)

# --- Moves (orders.services.transitions) ---------------------------------------------------
# Every stage moves every batch through it: the orders' UPDATE, an event row per order and a
# callback row per order that asked for callbacks (empty arrays: none), in one statement
# (orders.services.transitions.orders_move), where three round trips were. The arrays go in
# PostgreSQL's binary form (infra.sql); what is the same for every row (the target, the
# actor, the time, a new delivery's state) is one parameter or a constant.
ORDERS_MOVE_WRITE = statement(
    """
WITH moved AS (
  UPDATE {O} SET {O.status} = %s, {O.reason} = %s, {O.updated_at} = %s
  WHERE {O.id} = ANY(%b::bigint[])
), events AS (
  INSERT INTO {E} ({E.order_id}, {E.source}, {E.target}, {E.actor}, {E.data}, {E.created_at})
  SELECT v.o, v.s, %s, %s, v.d, %s FROM unnest(%b::bigint[], %b::text[], %b::jsonb[]) AS v(o, s, d)
)
INSERT INTO {D} ({D.order_id}, {D.url}, {D.order_status}, {D.payload}, {D.state}, {D.attempts},
  {D.next_attempt_at}, {D.last_error}, {D.delivered_at}, {D.created_at}, {D.updated_at})
SELECT v.o, v.u, %s, v.p, '{pending}', 0, %s, '', NULL, %s, %s
FROM unnest(%b::bigint[], %b::text[], %b::jsonb[]) AS v(o, u, p)
""",
    O=Order,
    E=OrderEvent,
    D=CallbackDelivery,
    pending=CallbackDelivery.State.PENDING.value,
)

# Payments moved in one statement (orders.services.transitions.payments_move): the new ones
# inserted (their ids come back, by order: one payment per order), the others' open fields
# written, and every step's event. The caller read every payment it moves under its order's
# lock, so the fields it did not change are written back as they are.
PAYMENTS_MOVE_WRITE = statement(
    """
WITH created AS (
  INSERT INTO {P} ({P.order_id}, {P.idempotency_key}, {P.amount}, {P.currency}, {P.status},
    {P.charge_id}, {P.attempts}, {P.last_error}, {P.next_attempt_at}, {P.created_at},
    {P.updated_at})
  SELECT v.o, v.k, v.m, v.c, v.s, v.g, v.a, v.e, v.n, v.t, %s
  FROM unnest(%b::bigint[], %b::text[], %b::bigint[], %b::text[], %b::text[], %b::text[],
              %b::int[], %b::text[], %b::timestamptz[], %b::timestamptz[])
    AS v(o, k, m, c, s, g, a, e, n, t)
  RETURNING {P.order_id}, {P.id}
), moved AS (
  UPDATE {P} p SET {P.status} = v.s, {P.charge_id} = v.g, {P.attempts} = v.a,
    {P.last_error} = v.e, {P.next_attempt_at} = v.n, {P.updated_at} = %s
  FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::int[], %b::text[], %b::timestamptz[])
    AS v(i, s, g, a, e, n)
  WHERE p.{P.id} = v.i
), events AS (
  INSERT INTO {E} ({E.order_id}, {E.source}, {E.target}, {E.actor}, {E.data}, {E.created_at})
  SELECT v.o, v.s, v.t, %s, v.d, %s
  FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::jsonb[]) AS v(o, s, t, d)
)
SELECT {P.order_id}, {P.id} FROM created
""",
    P=Payment,
    E=OrderEvent,
)

# --- Holds (orders.services.holds) ---------------------------------------------------------
# Transaction-scoped advisory locks keyed (campaign, hash of the customer): a collision only
# defers an order by one batch. Names no table.
CUSTOMERS_LOCK = statement(
    "SELECT c FROM unnest(%s::text[]) AS c WHERE pg_try_advisory_xact_lock(%s, hashtext(c))"
)
# How many of the campaign's orders each customer holds or bought. The statuses are in the
# text (not parameters) so that the generic plan of this prepared statement can use
# order_shopper_idx, whose predicate names them.
PER_CUSTOMER = statement(
    """
SELECT {O.customer_id}, count(*) FROM {O}
WHERE {O.campaign_id} = %s AND {O.customer_id} = ANY(%s)
  AND {O.status} IN ('{reserved}', '{paid}')
GROUP BY {O.customer_id}
""",
    O=Order,
    reserved=_STATUS["reserved"],
    paid=_STATUS["paid"],
)
# The hold's clock starts with the first payment attempt.
HOLDS_CLOCK_START = statement(
    """
UPDATE {R} SET {R.expires_at} = %s, {R.updated_at} = %s
WHERE {R.order_id} = ANY(%s) AND {R.closed_at} IS NULL
""",
    R=Reservation,
)
# A batch's holds, opened by the reservation worker. No deadline yet: the hold's clock starts
# at the first payment attempt (HOLDS_CLOCK_START).
RESERVATIONS_INSERT = statement(
    """
INSERT INTO {R} ({R.order_id}, {R.campaign_id}, {R.coupon_id}, {R.discount}, {R.expires_at},
  {R.closed_at}, {R.outcome}, {R.created_at}, {R.updated_at})
SELECT v.o, v.c, v.k, v.d, NULL, NULL, '', %s, %s
FROM unnest(%b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[]) AS v(o, c, k, d)
""",
    R=Reservation,
)
# Closes what is still open, and says what it closed: one statement, so a hold is closed,
# and its budget, coupon and stock moved, exactly once.
HOLDS_CLOSE = statement(
    """
UPDATE {R} SET {R.closed_at} = %s, {R.outcome} = %s, {R.updated_at} = %s
WHERE {R.order_id} = ANY(%s) AND {R.closed_at} IS NULL
RETURNING {R.order_id}, {R.campaign_id}, {R.coupon_id}, {R.discount}
""",
    R=Reservation,
)

# --- Callbacks (orders.services.callbacks) -------------------------------------------------
_STATE = {
    "pending": CallbackDelivery.State.PENDING.value,
    "superseded": CallbackDelivery.State.SUPERSEDED.value,
}
# Due deliveries, each only when it is the oldest pending delivery of its order (a chatbot
# hears an order's statuses in the order they happened), leased in the same statement:
# attempts counted, next_attempt_at pushed out past a POST's time-out. "The oldest" is a
# subquery per due delivery, which PostgreSQL always runs as a probe of callback_pending_idx
# by that order: written as NOT EXISTS (an older pending one), the planner, whose statistics
# see few pending deliveries, joined it as a walk of the whole partial index per due
# delivery, dead entries included, slower with history (the 2-million-order soak,
# docs/soak.md).
CALLBACKS_CLAIM = statement(
    """
WITH due AS (
  SELECT d.{D.id} FROM {D} d
  WHERE d.{D.state} = '{pending}' AND d.{D.next_attempt_at} <= %s
    AND d.{D.id} = (
      SELECT min(older.{D.id}) FROM {D} older
      WHERE older.{D.order_id} = d.{D.order_id} AND older.{D.state} = '{pending}')
  ORDER BY d.{D.next_attempt_at}, d.{D.id}
  LIMIT %s
  FOR NO KEY UPDATE OF d SKIP LOCKED
)
UPDATE {D} d SET {D.attempts} = d.{D.attempts} + 1, {D.next_attempt_at} = %s, {D.updated_at} = %s
FROM due, {O} o, {C} c
WHERE d.{D.id} = due.{D.id} AND o.{O.id} = d.{D.order_id} AND c.{C.id} = o.{O.client_id}
RETURNING d.{D.id}, o.{O.client_id}, d.{D.attempts}, d.{D.url}, d.{D.payload},
  c.{C.webhook_secret}, o.{O.request_id},
  CASE WHEN c.{C.webhook_secret_previous_until} > %s THEN c.{C.webhook_secret_previous} ELSE ''
  END,
  d.{D.created_at}
""",
    D=CallbackDelivery,
    O=Order,
    C=ApiClient,
    **_STATE,
)
# Of the orders with a delivery due, each pending delivery of a passing status that a newer
# pending one follows: whether it is due itself, or still waiting out its delay
# (CALLBACK_PASSING_DELAY_SECONDS) while its successor is due and must not wait behind it.
# The orders with a delivery due are read once, as an array, and their deliveries looked up by
# order_id: as a join, the planner (which expects few pending rows) rescanned the due orders
# for every pending delivery, a cost that grows with the square of the pending deliveries,
# which is what a chatbot's outage leaves behind. "A newer one follows" is the order's newest
# pending delivery, a probe by order as in CALLBACKS_CLAIM.
CALLBACKS_COALESCE = statement(
    """
UPDATE {D} d SET {D.state} = '{superseded}', {D.updated_at} = %s,
  {D.last_error} = 'superseded by a newer status of the order'
WHERE d.{D.order_id} = ANY(ARRAY(
        SELECT {D.order_id} FROM {D} WHERE {D.state} = '{pending}' AND {D.next_attempt_at} <= %s))
  AND d.{D.state} = '{pending}' AND NOT (d.{D.order_status} = ANY(%s))
  AND NOT (d.{D.next_attempt_at} > %s AND d.{D.next_attempt_at} - d.{D.updated_at} = %s)
  AND d.{D.id} < (
    SELECT max(newer.{D.id}) FROM {D} newer
    WHERE newer.{D.order_id} = d.{D.order_id} AND newer.{D.state} = '{pending}')
""",
    D=CallbackDelivery,
    **_STATE,
)
# Each outcome written only if the delivery is still the one that was claimed: pending, with
# the attempt the POST was made for (a later claim after a lost lease has moved it on).
CALLBACKS_RECORD = statement(
    """
UPDATE {D} d SET {D.state} = v.{D.state}, {D.attempts} = v.{D.attempts},
  {D.delivered_at} = v.{D.delivered_at},
  {D.last_error} = COALESCE(v.{D.last_error}, d.{D.last_error}),
  {D.next_attempt_at} = COALESCE(v.{D.next_attempt_at}, d.{D.next_attempt_at}),
  {D.updated_at} = %s
FROM unnest(%s::bigint[], %s::int[], %s::text[], %s::int[], %s::timestamptz[], %s::text[],
            %s::timestamptz[], %s::text[])
  AS v({D.id}, claimed, {D.state}, {D.attempts}, {D.delivered_at}, {D.last_error},
       {D.next_attempt_at}, outcome)
WHERE d.{D.id} = v.{D.id} AND d.{D.state} = '{pending}' AND d.{D.attempts} = v.claimed
RETURNING v.outcome
""",
    D=CallbackDelivery,
    **_STATE,
)
