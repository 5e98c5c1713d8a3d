"""Session ids are UUIDs; a client that supplies one makes its start idempotent."""

import uuid
from functools import lru_cache

from domain.errors import InvalidInput, NotFound


def new_session_id() -> str:
    return str(uuid.uuid4())


def canonical_session_id(value: str, field: str = "id") -> str:
    """The id a client proposes, in canonical form; a malformed one is invalid input."""
    canonical = _canonical(value)
    if canonical is None:
        raise InvalidInput(field, "must be a UUID")
    return canonical


def existing_session_id(value: str) -> str:
    """The id of a session a client refers to; a malformed one names no session."""
    canonical = _canonical(value)
    if canonical is None:
        raise NotFound(f"no session {value}")
    return canonical


# Batches name the same few sessions over and over; parsing a UUID costs more than a lookup.
@lru_cache(maxsize=4096)
def _canonical(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
