"""The orders app's sentences (orders, payments and refunds): every `detail` its errors can
answer, as gettext message ids. infra.messages gathers every app's DETAILS; the
translations are in orders/locale/.
"""

from django.utils.translation import gettext_noop as _

DETAILS: list[str] = [
    _("The order can no longer be cancelled."),
    _("The order is %(status)s."),
    _("A payment for this order is in progress."),
    _("Too many orders are waiting for this campaign; retry later."),
    _("No such order."),
    _("Only a paid order can be refunded."),
    _("The order has no settled charge to refund."),
    _("The gateway refused the refund; nothing was refunded."),
    _("The gateway refused the refund: %(error)s"),
    _(
        "The gateway gave no definite answer; the refund may have happened. Try again: "
        "the same idempotency key is sent, so the charge is never refunded twice."
    ),
]
