"""What domain values look like in documents, both ways.

Meter names may contain dots (`video.seconds`), which MongoDB reads as paths, so in documents a
dot is written as a colon (a character meter names never contain). Integer quantities are stored
as integers and decimals as Decimal128, so that `$inc` and `$sum` stay exact and an integer meter
that receives a decimal becomes a decimal, as in the domain.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128
from pymongo.errors import BulkWriteError

from domain.usage import Quantity, Usage, normalize

Document = dict[str, Any]
DUPLICATE_KEY = 11000


def within(field: str, window: Any) -> Document:
    """A filter on `field` for an application.ports.Window: [start, end), open bounds left out."""
    bounds: Document = {}
    if window.start is not None:
        bounds["$gte"] = window.start
    if window.end is not None:
        bounds["$lt"] = window.end
    return {field: bounds} if bounds else {}


def meter_field(meter: str) -> str:
    return meter.replace(".", ":")


def meter_name(field: str) -> str:
    return field.replace(":", ".")


def to_bson(quantity: Quantity) -> int | Decimal128:
    return quantity if isinstance(quantity, int) else Decimal128(quantity)


def from_bson(value: int | Decimal128 | Decimal) -> Quantity:
    if isinstance(value, Decimal128):
        return normalize(value.to_decimal())
    if isinstance(value, Decimal):
        return normalize(value)
    return int(value)


def usage_to_document(usage: Mapping[str, Quantity]) -> Document:
    return {meter_field(m): to_bson(q) for m, q in usage.items()}


def usage_from_document(document: Mapping[str, Any] | None) -> Usage:
    return {meter_name(f): from_bson(q) for f, q in (document or {}).items()}


def increments(prefix: str, usage: Mapping[str, Quantity]) -> Document:
    """An `$inc` adding `usage` to the usage document at `prefix`."""
    return {f"{prefix}.{meter_field(m)}": to_bson(q) for m, q in usage.items()}


def duplicates_in(error: BulkWriteError) -> set[int]:
    """The positions a bulk write refused as already stored (an ordered one stops at the
    first); any other failure is raised again."""
    errors = error.details["writeErrors"]
    if any(e["code"] != DUPLICATE_KEY for e in errors):
        raise error
    return {e["index"] for e in errors}


def past(first: str, second: str, place: tuple[Any, Any], descending: bool = False) -> Document:
    """The documents after `place` (before it, if `descending`) in the order of the fields
    (first, second): where a listing in that order resumes."""
    beyond = "$lt" if descending else "$gt"
    at_first, at_second = place
    return {"$or": [{first: {beyond: at_first}}, {first: at_first, second: {beyond: at_second}}]}


def wall_clock() -> datetime:
    """Now, on this machine's clock: writes in flight are stamped and aged on it (as
    event_counting's marks), not on a caller's clock."""
    return datetime.now(UTC)
