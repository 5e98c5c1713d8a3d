"""Session ids are UUIDs; a client that supplies one makes its start idempotent."""

import uuid

from domain.errors import InvalidInput


def new_session_id() -> str:
    return str(uuid.uuid4())


def canonical_session_id(value: str, field: str = "id") -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidInput(field, "must be a UUID") from None
