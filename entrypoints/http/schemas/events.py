"""The bodies of events: a batch in, what became of each event, events and their counts out."""

from datetime import datetime
from typing import Annotated

import msgspec

from domain.events import Distribution, Event
from entrypoints.http.schemas.common import JSONObject, MetersOut, documented_as, meters_out


class EventBatchBody(msgspec.Struct, kw_only=True):
    events: list[Annotated[msgspec.Raw, documented_as(Event)]]


class EventOut(msgspec.Struct):
    session_id: str
    sequence_no: int
    type: str
    at: datetime
    category: str | None
    label: str | None
    data: JSONObject | None
    meters: MetersOut

    @classmethod
    def of(cls, e: Event) -> "EventOut":
        meters = meters_out(e.meters)
        return cls(e.session_id, e.sequence_no, e.type, e.at, e.category, e.label, e.data, meters)


class DistributionOut(msgspec.Struct):
    total: int
    counts: dict[str, int]
    percentages: dict[str, float]

    @classmethod
    def of(cls, d: Distribution) -> "DistributionOut":
        return cls(d.total, d.counts, d.percentages)
