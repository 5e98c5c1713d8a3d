"""What the areas' bodies share: timestamps, meters, JSON objects, the report window, lists and
pages, and the error envelope."""

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Protocol, TypeVar

import msgspec
from litestar import Request
from litestar.params import QueryParameter

from application import pagination
from domain.usage import Usage

T = TypeVar("T")
Found = TypeVar("Found")

Timestamp = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with an offset")]
Quantity = int | Decimal  # JSON numbers decode into Decimal exactly
Meters = dict[str, Quantity]
MetersOut = dict[str, int | str]  # decimals leave as strings of plain digits
JSONObject = dict[str, Any]

# The window of a report or a listing: ?from=…&to=… (timestamps with an offset).
From = Annotated[datetime | None, QueryParameter(name="from")]
To = Annotated[datetime | None, QueryParameter(name="to")]


# The key of a raw batch item's msgspec.Meta naming the type that documents it.
DOCUMENTED_AS = "documented_as"


def documented_as(item: type) -> msgspec.Meta:
    """For `Annotated[msgspec.Raw, documented_as(T)]`: a batch's item, kept raw so that each is
    decoded on its own (one bad item does not sink the batch), which the OpenAPI schema shows as
    a `T` (entrypoints/http/openapi.RawItemSchemas), not as any JSON value."""
    return msgspec.Meta(extra={DOCUMENTED_AS: item})


ATTRIBUTE_FILTER = "attributes."


def attribute_filters(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The `attributes.<key>=<value>` parameters of a query (their names cannot be declared
    one by one: a tenant chooses its keys), by key."""
    return {
        name.removeprefix(ATTRIBUTE_FILTER): value
        for name, value in request.query_params.items()
        if name.startswith(ATTRIBUTE_FILTER)
    }


def meters_out(usage: Usage) -> MetersOut:
    """Decimals as plain digits: str() and msgspec would write 0.000000001 as "1E-9"."""
    return {m: q if isinstance(q, int) else format(q, "f") for m, q in usage.items()}


class Listing(msgspec.Struct, Generic[T]):
    """Everything found, in one answer."""

    items: list[T]


class Page(Listing[T]):
    """One page of a cursor-paginated listing; `next_cursor` asks for the next (null: the last)."""

    next_cursor: str | None

    @classmethod
    def of(cls, page: pagination.Page[Found], out: Callable[[Found], T]) -> "Page[T]":
        return cls([out(item) for item in page.items], page.next_cursor)


class StatusOut(msgspec.Struct):
    status: str


class ErrorOut(msgspec.Struct):
    """Every error's envelope (entrypoints/http/errors.py)."""

    error: str
    detail: str


class FieldErrorOut(msgspec.Struct):
    field: str
    message: str


class ValidationErrorOut(msgspec.Struct):
    error: str
    detail: str
    fields: list[FieldErrorOut]


class Rejected(Protocol):
    @property
    def index(self) -> int: ...

    @property
    def error(self) -> str: ...


class BatchOutcome(Protocol):
    """What a batch endpoint says of its batch (events, errors, metrics)."""

    @property
    def inserted(self) -> int: ...

    @property
    def duplicates(self) -> int: ...

    @property
    def rejections(self) -> Sequence[Rejected]: ...


class ItemErrorOut(msgspec.Struct):
    index: int
    error: str


class BatchResultOut(msgspec.Struct):
    inserted: int
    duplicates: int
    failed: int
    errors: list[ItemErrorOut]

    @classmethod
    def of(cls, outcome: BatchOutcome) -> "BatchResultOut":
        errors = [ItemErrorOut(r.index, r.error) for r in outcome.rejections]
        return cls(outcome.inserted, outcome.duplicates, len(errors), errors)
