"""Orders' services: the only code that writes orders, holds, payments and callbacks.

A package because the pipeline has several stages; each module owns one of them.
"""

from orders.services.callbacks import (
    callbacks_drain,
    callbacks_resend,
    callbacks_resend_between,
    signature,
    signature_verify,
)
from orders.services.controls import (
    order_refund,
    staff_callbacks_replay,
    staff_callbacks_resend,
    staff_callbacks_resend_between,
    staff_order_cancel,
    staff_orders_unpark,
    staff_payments_replay,
)
from orders.services.holds import (
    holds_close,
    order_park,
    reservations_drain,
    reservations_take_batch,
)
from orders.services.intake import ItemIn, Placed, order_place
from orders.services.lifecycle import (
    callbacks_replay,
    holds_expire,
    order_cancel,
    orders_unpark,
    payments_replay,
    pipeline_sweep,
)
from orders.services.settlement import (
    payments_claim_batch,
    payments_drain,
    payments_record,
    payments_record_and_claim,
)

__all__ = [
    "ItemIn",
    "Placed",
    "callbacks_drain",
    "callbacks_replay",
    "callbacks_resend",
    "callbacks_resend_between",
    "holds_close",
    "holds_expire",
    "order_cancel",
    "order_park",
    "order_place",
    "order_refund",
    "orders_unpark",
    "payments_claim_batch",
    "payments_drain",
    "payments_record",
    "payments_record_and_claim",
    "payments_replay",
    "pipeline_sweep",
    "reservations_drain",
    "reservations_take_batch",
    "signature",
    "signature_verify",
    "staff_callbacks_replay",
    "staff_callbacks_resend",
    "staff_callbacks_resend_between",
    "staff_order_cancel",
    "staff_orders_unpark",
    "staff_payments_replay",
]
