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
from domain.session import MAX_ID_LENGTH

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Characters: the longest real one holds an instant and an id of MAX_ID_LENGTH characters, each
# of which JSON may write as 12 (a character past the Basic Multilingual Plane: two \uXXXX), in
# base64 (4 characters for 3 bytes).
MAX_CURSOR = (12 * MAX_ID_LENGTH + 100) * 4 // 3

T = TypeVar("T")


@dataclass(frozen=True)
class Position:
    """Where a listing in the order of an instant stopped: the instant and id of the last item
    returned."""

    at: datetime
    id: str


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
        if len(cursor) > MAX_CURSOR:
            raise ValueError("longer than any cursor this service returns")
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeError, RecursionError):
        position = None
    if not isinstance(position, list) or len(position) != arity or not all(map(_held, position)):
        raise InvalidInput("cursor", "is not a cursor this service returned")
    return position


def _held(value: Any) -> bool:
    # An integer, or text every store can compare with its own: a forged lone surrogate or NUL
    # would reach the driver and fail there.
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    return isinstance(value, int) and not isinstance(value, bool)


def decode_instant_cursor(cursor: str) -> tuple[datetime, str]:
    """The (instant, id) a listing in the order of an instant stopped at."""
    at, id = decode_cursor(cursor, 2)
    try:
        if not isinstance(id, str):
            raise TypeError(id)
        return as_utc("cursor", datetime.fromisoformat(at)), id
    except (TypeError, ValueError, InvalidInput):
        raise InvalidInput("cursor", "is not a cursor this service returned") from None


def position_of(cursor: str | None) -> Position | None:
    """Where a listing in the order of an instant resumes (None: from its start; an empty
    cursor, `?cursor=`, too)."""
    return Position(*decode_instant_cursor(cursor)) if cursor else None


def page_of(rows: list[T], limit: int, position: Callable[[T], list[Any]]) -> Page[T]:
    """`rows` were fetched with limit + 1; the extra row only says that there is more."""
    if len(rows) <= limit:
        return Page(rows, None)
    items = rows[:limit]
    return Page(items, encode_cursor(position(items[-1])))


def page_of_whole(
    items: list[T],
    limit: int | None,
    cursor: str | None,
    position: Callable[[T], list[Any]],
    arity: int = 1,
    descending: bool = False,
) -> Page[T]:
    """A page of a short list read whole (a tenant's plans, funnels and keys; a subject's
    subscriptions): up to `limit` items after the place `cursor` holds, in the order of their
    places (descending if told). `position` is an item's place: `arity` texts and integers
    unique to it. An item removed meanwhile leaves its place behind, so a walk skips nothing."""
    size = check_limit(limit)
    items = sorted(items, key=position, reverse=descending)
    if cursor:  # an empty one (`?cursor=`) asks for the first page, as on every list
        after = decode_cursor(cursor, arity)
        try:
            items = [
                i for i in items if (position(i) < after if descending else position(i) > after)
            ]
        except TypeError:  # a place of other types: not one this listing gave
            raise InvalidInput("cursor", "is not a cursor this service returned") from None
    return page_of(items[: size + 1], size, position)
