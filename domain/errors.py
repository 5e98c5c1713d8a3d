"""Errors the core raises. Entry points map each class to one status and error code."""


class DomainError(Exception):
    """Base class: `detail` is a sentence for a person."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(DomainError):
    """A value breaks a rule of the domain; `field` names it (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Late(InvalidInput):
    """An instant too far in the past: data about it is no longer taken (the late-data window)."""


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    pass


class Contended(Conflict):
    """Others changed the same thing so often meanwhile that this change gave up: nothing of it
    was written, and the same request again is expected to pass (a busy moment, not a clash)."""


class PayloadTooLarge(DomainError):
    pass


class Unauthorized(DomainError):
    pass


class Forbidden(DomainError):
    pass


class InsufficientCredits(DomainError):
    """A rated session may not start: the balance is below the tenant's minimum (hard policy)."""

    def __init__(self, balance: int, required: int) -> None:
        super().__init__(f"the balance is {balance} credits; starting needs {required}")
        self.balance = balance
        self.required = required
