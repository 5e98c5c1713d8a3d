"""Cursor pagination shared by every listing: opaque cursors, a bounded page size."""

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from domain.clock import as_utc
from domain.errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def check_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput("limit", f"must be 1-{MAX_LIMIT}")
    return limit


def encode_cursor(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        position = None
    if not isinstance(position, list) or len(position) != arity:
        raise InvalidInput("cursor", "is not a cursor this service returned")
    return position


def decode_instant_cursor(cursor: str) -> tuple[datetime, str]:
    """The (instant, id) a newest-first listing stopped at."""
    at, id = decode_cursor(cursor, 2)
    try:
        return as_utc("cursor", datetime.fromisoformat(at)), str(id)
    except (TypeError, ValueError, InvalidInput):
        raise InvalidInput("cursor", "is not a cursor this service returned") from None


def page_of(rows: list[T], limit: int, position: Callable[[T], list[Any]]) -> Page[T]:
    """`rows` were fetched with limit + 1; the extra row only says that there is more."""
    if len(rows) <= limit:
        return Page(rows, None)
    items = rows[:limit]
    return Page(items, encode_cursor(position(items[-1])))
