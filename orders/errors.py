from config.errors import DomainError


class NotCancellable(DomainError):
    code = "not_cancellable"
    status = 409
    default_detail = "The order can no longer be cancelled."


class LineFull(DomainError):
    """The campaign's line is at its backlog ceiling: shed at once rather than grow slower."""

    code = "overloaded"
    status = 429
    default_detail = "Too many orders are waiting for this campaign; retry later."
