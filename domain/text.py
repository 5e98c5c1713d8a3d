"""Text a client sends: bounded in length, and storable by every store (no NUL characters,
which PostgreSQL text refuses)."""

from domain.errors import InvalidInput


def check_text(field: str, value: str, max_length: int) -> str:
    if not 1 <= len(value) <= max_length:
        raise InvalidInput(field, f"must be 1-{max_length} characters")
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    return value
