"""Ingest a batch of events: store the valid ones once each, say what happened to every one."""

from collections.abc import Sequence
from dataclasses import dataclass

from application.ports import EventLog
from domain.errors import PayloadTooLarge
from domain.events import BatchOutcome, Event, EventRejection
from domain.tenants import Tenant


@dataclass(frozen=True)
class IngestEventsCommand:
    tenant: Tenant
    # In the client's order; an event that could not be read is already a rejection.
    events: Sequence[Event | EventRejection]


class IngestEvents:
    def __init__(self, events: EventLog) -> None:
        self._events = events

    async def __call__(self, command: IngestEventsCommand) -> BatchOutcome:
        limit = command.tenant.settings.max_batch_events
        if len(command.events) > limit:
            raise PayloadTooLarge(f"a batch holds at most {limit} events")
        valid = [(i, e) for i, e in enumerate(command.events) if isinstance(e, Event)]
        unreadable = [e for e in command.events if isinstance(e, EventRejection)]
        stored = await self._events.append(command.tenant.id, valid) if valid else BatchOutcome()
        rejections = sorted([*unreadable, *stored.rejections], key=lambda r: r.index)
        return BatchOutcome(stored.inserted, stored.duplicates, rejections)
