from infra.errors import DomainError


class NotCancellable(DomainError):
    code = "not_cancellable"
    status = 409
    default_detail = "The order can no longer be cancelled."


class LineFull(DomainError):
    """The campaign's line is at its backlog ceiling: shed at once rather than grow slower."""

    code = "overloaded"
    status = 429
    default_detail = "Too many orders are waiting for this campaign; retry later."


class NotRefundable(DomainError):
    code = "not_refundable"
    status = 409
    default_detail = "Only a paid order can be refunded."


class RefundRefused(DomainError):
    """The gateway refused for good (no such charge, nothing left to refund): nothing moved."""

    code = "refund_refused"
    status = 502
    default_detail = "The gateway refused the refund; nothing was refunded."


class RefundUnknown(DomainError):
    """No definite answer after a few tries. Asking again is safe: the same key is sent."""

    code = "refund_unknown"
    status = 503
    default_detail = (
        "The gateway gave no definite answer; the refund may have happened. Try again: "
        "the same idempotency key is sent, so the charge is never refunded twice."
    )
