from config.errors import DomainError


class NotCancellable(DomainError):
    code = "not_cancellable"
    status = 409
    default_detail = "The order can no longer be cancelled."
