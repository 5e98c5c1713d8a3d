from collections import Counter
from collections.abc import Sequence

from adapters.memory.store import MemoryStore
from domain.events import BatchOutcome, Distribution, Event, EventRejection


class MemoryEventLog:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def append(self, tenant_id: str, events: Sequence[tuple[int, Event]]) -> BatchOutcome:
        inserted = duplicates = 0
        rejections: list[EventRejection] = []
        for index, event in events:
            session = self._store.sessions.get((tenant_id, event.session_id))
            if session is None:
                rejections.append(EventRejection(index, "session_not_found"))
                continue
            stored = self._store.events.setdefault((tenant_id, event.session_id), {})
            if event.sequence_no in stored:
                duplicates += 1
            elif not session.is_active:
                rejections.append(EventRejection(index, "session_ended"))
            else:
                stored[event.sequence_no] = event
                session.add_usage(event.meters)
                session.event_count += 1
                session.max_sequence_no = max(session.max_sequence_no, event.sequence_no)
                inserted += 1
        return BatchOutcome(inserted, duplicates, rejections)

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
