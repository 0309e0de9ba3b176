"""Domain errors: plain Python, no DRF. `infra.api` renders them as the contract's envelope."""

from typing import ClassVar


class DomainError(Exception):
    """A business rule said no. `code` and `status` are part of the public contract
    (docs/integrator-guide.md, Errors and what to do)."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    default_detail: ClassVar[str] = "The request could not be completed."

    def __init__(self, detail: str | None = None, **extra: object) -> None:
        self.detail = detail or self.default_detail
        self.extra = extra
        super().__init__(self.detail)


class NotFound(DomainError):
    code = "not_found"
    status = 404
    default_detail = "Not found."


class InvalidTransition(DomainError):
    """A state machine refused a move; a bug or a race that the caller lost."""

    code = "invalid_transition"
    status = 409

    def __init__(self, *, entity: str, current: str, target: str) -> None:
        super().__init__(f"{entity} cannot move from {current} to {target}.")
        self.entity, self.current, self.target = entity, current, target


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    status = 422
    default_detail = "This Idempotency-Key was already used with a different request body."


class InvalidInput(DomainError):
    """Input that passed the serializer but names things that do not exist (unknown SKU)."""

    code = "invalid"
    status = 400
    default_detail = "The request is not valid."


class Overloaded(DomainError):
    """A client or a customer over its rate limit: retry after `retry_after` seconds."""

    code = "overloaded"
    status = 429
    default_detail = "Too many requests; retry later."
