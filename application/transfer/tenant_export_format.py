"""A tenant's state as JSON Lines: a header line, then one record per line, `{"record": …, …}`,
then (since version 2) an end line that counts them, so that a file cut short is refused.
Version 3 added the rollups, the funnels' days and LiveKit's tracks; version 4 the rooms LiveKit
said finished, the handled webhook ids, the refused starts and the erasures under way.

Exact both ways: instants are `{"$time": ISO 8601}`, days `{"$date": "2026-12-02"}`, decimals
`{"$decimal": "0.1"}` (integers
stay JSON integers), so quantities and money come back as the types they were. Each record's
fields are those of its domain class, read back by the class's own type hints; a funnel's tally
is the document it is stored as (FunnelTally.document).
"""

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from application.transfer.ports import (
    ArchivedErasure,
    ArchivedFinishedRoom,
    ArchivedFunnelDay,
    ArchivedRefusals,
    ArchivedTrack,
    ArchivedWebhook,
    Record,
)
from application.transfer.record_checks import (
    check_erasure,
    check_finished_room,
    check_funnel_day,
    check_refusals,
    check_rollup,
    check_track,
    check_webhook,
)
from domain.clock import as_utc
from domain.credits import Alert, LedgerEntry, Rate
from domain.error_reports import ErrorReport
from domain.errors import InvalidInput
from domain.events import Event
from domain.funnels import Funnel, FunnelTally
from domain.livekit import LiveKitAccount
from domain.performance import Metric
from domain.plans import Plan, Registration, Subscription, SubscriptionSet
from domain.rollups import Rollup
from domain.sales import Sale
from domain.session import Session
from domain.snapshots import Snapshot
from domain.tenants import ApiKey, Tenant

FORMAT = "sessionmeter-export"
VERSION = 4
READ = (1, 2, 3, 4)  # the versions an import reads; version 1 has no end line
END = "end"
# In the order an export gives them and an import stores them (ImportTenant._flush).
RECORD_TYPES: dict[str, type[Record]] = {
    "tenant": Tenant,
    "api_key": ApiKey,
    "rate": Rate,
    "plan": Plan,
    "subscription": Subscription,
    "subscription_set": SubscriptionSet,
    "registration": Registration,
    "funnel": Funnel,
    "erasure": ArchivedErasure,
    "session": Session,
    "event": Event,
    "track": ArchivedTrack,
    "finished_room": ArchivedFinishedRoom,
    "webhook": ArchivedWebhook,
    "ledger_entry": LedgerEntry,
    "alert": Alert,
    "livekit_account": LiveKitAccount,  # with its secret: keep exports as safe as secrets
    "snapshot": Snapshot,
    "error": ErrorReport,
    "metric": Metric,
    "sale": Sale,
    "refused_start": ArchivedRefusals,
    "rollup": Rollup,
    "funnel_day": ArchivedFunnelDay,
}
TYPE_OF = {cls: name for name, cls in RECORD_TYPES.items()}
# What a record must be beyond its fields' types (none: what its types say).
CHECKS: dict[type, Callable[[Any], None]] = {
    Rollup: check_rollup,
    ArchivedFunnelDay: check_funnel_day,
    ArchivedTrack: check_track,
    ArchivedErasure: check_erasure,
    ArchivedFinishedRoom: check_finished_room,
    ArchivedWebhook: check_webhook,
    ArchivedRefusals: check_refusals,
}


@dataclasses.dataclass(frozen=True)
class Header:
    version: int


@dataclasses.dataclass(frozen=True)
class End:
    records: int  # the lines between the header and this one


def header(tenant_name: str) -> str:
    return json.dumps({"record": FORMAT, "version": VERSION, "tenant": tenant_name})


def end(records: int) -> str:
    return json.dumps({"record": END, "records": records})


def to_line(record: Record) -> str:
    return json.dumps({"record": TYPE_OF[type(record)], **_encode(record)}, separators=(",", ":"))


def from_line(line: str, number: int) -> Record | Header | End:
    """What line `number` holds. InvalidInput names the line."""
    try:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        kind = data.pop("record")
        if kind == FORMAT:
            if data.get("version") not in READ:
                raise ValueError(f"format version {data.get('version')} is not one of {READ}")
            return Header(data["version"])
        if kind == END:
            return End(_value(int, data["records"]))
        record: Record = _decode(RECORD_TYPES[kind], data)
        if (check := CHECKS.get(type(record))) is not None:
            check(record)
        return record
    except InvalidInput as error:
        raise InvalidInput(f"line {number}", error.detail) from None
    except (ValueError, KeyError, TypeError, ArithmeticError) as error:  # Decimal("lots") too
        raise InvalidInput(f"line {number}", f"not a record of this format ({error})") from None


def _encode(value: Any) -> Any:
    if isinstance(value, FunnelTally):
        return value.document()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return {"$time": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(cls: type, data: dict[str, Any]) -> Any:
    """A field with a default may be missing: the export was written before the field existed
    (a LiveKit account's url)."""
    hints = typing.get_type_hints(cls)
    return cls(
        **{
            f.name: _value(hints[f.name], data[f.name])
            for f in dataclasses.fields(cls)
            if f.name in data or not _has_default(f)
        }
    )


def _has_default(field: dataclasses.Field[Any]) -> bool:
    return (
        field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
    )


def _value(hint: Any, raw: Any) -> Any:
    """`raw` as the type `hint` names. Values typed Any (clients' JSON) are taken as they are,
    so a client's own "$time" key is never mistaken for an instant."""
    if hint is Any:
        return raw
    if raw is None:
        if type(None) in typing.get_args(hint):
            return None
        raise ValueError("null where a value is needed")
    if hint is FunnelTally:
        return _tally(raw)
    if isinstance(raw, dict) and "$time" in raw:
        return as_utc("$time", datetime.fromisoformat(raw["$time"]))
    if isinstance(raw, dict) and "$date" in raw:
        return date.fromisoformat(raw["$date"])
    if isinstance(raw, dict) and "$decimal" in raw:
        return _decimal(raw["$decimal"])
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        structured = [a for a in arguments if dataclasses.is_dataclass(a) or _is_enum(a)]
        if structured:
            return _value(structured[0], raw)
        return _one_of([a for a in arguments if a is not type(None)], raw)
    if dataclasses.is_dataclass(hint):
        return _decode(typing.cast(type, hint), raw)
    if _is_enum(hint):
        return hint(raw)
    if origin in (dict, Mapping):
        _expect(dict, raw)
        return {k: _value(arguments[1], v) for k, v in raw.items()}
    if origin is list:
        _expect(list, raw)
        return [_value(arguments[0], v) for v in raw]
    if origin is tuple and arguments[-1] is Ellipsis:  # tuple[X, ...]
        _expect(list, raw)
        return tuple(_value(arguments[0], v) for v in raw)
    if origin is tuple:  # tuple[X, Y]: exactly as many
        if not isinstance(raw, list) or len(raw) != len(arguments):
            raise ValueError(f"{raw!r} is not a list of {len(arguments)} values")
        return tuple(_value(a, v) for a, v in zip(arguments, raw, strict=True))
    if origin is frozenset:
        return frozenset(raw)
    if hint is Decimal:  # a decimal is always written {"$decimal": …}
        raise ValueError(f"{raw!r} is not a decimal")
    if hint in (datetime, date):  # an instant {"$time": …}, a day {"$date": …}
        raise ValueError(f"{raw!r} is not {'an instant' if hint is datetime else 'a day'}")
    if hint in SCALARS and not SCALARS[hint](raw):
        raise ValueError(f"{raw!r} is not a {hint.__name__} that every store holds")
    return raw


def _one_of(hints: list[Any], raw: Any) -> Any:
    """`raw` as the first of `hints` it is (a quantity: an integer or a decimal)."""
    for hint in hints:
        try:
            return _value(hint, raw)
        except ValueError:
            continue
    raise ValueError(
        f"{raw!r} is none of {', '.join(getattr(h, '__name__', str(h)) for h in hints)}"
    )


def _expect(kind: type, raw: Any) -> None:
    if not isinstance(raw, kind):
        raise ValueError(f"{raw!r} is not a JSON {JSON_NAMES[kind]}")


JSON_NAMES: dict[type, str] = {dict: "object", list: "array", str: "string"}


def _decimal(text: Any) -> Decimal:
    """A decimal every store holds: finite, of at most 34 digits (MongoDB's Decimal128)."""
    _expect(str, text)
    value = Decimal(text)
    if not value.is_finite() or len(value.as_tuple().digits) > 34:
        raise ValueError(f"{text!r} is not a decimal that every store holds")
    return value


def _tally(raw: Any) -> FunnelTally:
    """A funnel's tally from its document, each part of the types and lengths it is made with."""
    document = {
        "reached": _value(list[int], raw["reached"]),
        "dropped": _value(list[int], raw["dropped"]),
        "durations": _value(list[dict[str, int]], raw["durations"]),
        "statuses": _value(dict[str, int], raw["statuses"]),
    }
    stages = len(document["reached"])
    if len(document["dropped"]) != stages or len(document["durations"]) != max(stages - 1, 0):
        raise ValueError("a funnel tally's stages do not agree")
    return FunnelTally.from_document(document)


def _integer(raw: Any) -> bool:
    return isinstance(raw, int) and not isinstance(raw, bool) and -(2**63) <= raw < 2**63


# What a field of each plain type may hold: what the record's own code would have produced
# (an integer of every store: signed 64-bit).
SCALARS: dict[Any, Callable[[Any], bool]] = {
    bool: lambda raw: isinstance(raw, bool),
    int: _integer,
    float: lambda raw: (
        isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw)
    ),
    str: lambda raw: isinstance(raw, str),
}


def _is_enum(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Enum)
