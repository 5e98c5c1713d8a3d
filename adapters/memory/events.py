from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from adapters.memory.store import MemoryStore
from application.events.ports import EventLog
from domain.events import (
    Admission,
    BatchOutcome,
    Distribution,
    Event,
    count_into_sessions,
    ended_since,
    sort_batch,
)


class MemoryEventLog(EventLog):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def append(
        self,
        tenant_id: str,
        events: Sequence[tuple[int, Event]],
        now: datetime,
        window: timedelta,
        admits: Admission | None = None,
    ) -> BatchOutcome:
        sessions = {
            e.session_id: session
            for _, e in events
            if (session := self._store.sessions.get((tenant_id, e.session_id))) is not None
        }
        batch = sort_batch(events, sessions, now, window, admits)
        if looked_up := batch.to_look_up():
            batch = sort_batch(
                events, sessions, now, window, admits, self._stored(tenant_id, looked_up)
            )
        since = ended_since(sessions, [e for _, e in batch.new])
        taken: list[Event] = []
        for _, event in batch.new:
            stored = self._store.events.setdefault((tenant_id, event.session_id), {})
            if event.sequence_no not in stored:
                stored[event.sequence_no] = event
                taken.append(event)
        _, repriced = count_into_sessions(sessions, taken, now)
        rejections = batch.rejected(self._stored(tenant_id, (e for _, e, _ in batch.refused)))
        duplicates = len(events) - len(taken) - len(rejections)
        return BatchOutcome(len(taken), duplicates, rejections, repriced, since)

    def _stored(self, tenant_id: str, events: Iterable[Event]) -> set[tuple[str, int]]:
        """The keys of these events that are stored."""
        return {
            (e.session_id, e.sequence_no)
            for e in events
            if e.sequence_no in self._store.events.get((tenant_id, e.session_id), {})
        }

    async def find(
        self,
        tenant_id: str,
        session_id: str,
        limit: int,
        after_sequence_no: int = 0,
        type: str | None = None,
        label: str | None = None,
    ) -> list[Event]:
        stored = self._store.events.get((tenant_id, session_id), {})
        found = [
            stored[n]
            for n in sorted(stored)
            if n > after_sequence_no
            and (type is None or stored[n].type == type)
            and (label is None or stored[n].label == label)
        ]
        return found[:limit]

    async def distribution(self, tenant_id: str, session_id: str, field: str) -> Distribution:
        stored = self._store.events.get((tenant_id, session_id), {})
        counts = Counter(value for e in stored.values() if (value := getattr(e, field)) is not None)
        return Distribution(total=sum(counts.values()), counts=dict(counts))
