from collections import Counter
from collections.abc import AsyncIterator

from adapters.memory.store import MemoryStore
from application.funnels.ports import FunnelEvents, FunnelRepository
from application.ports import Window
from domain.funnels import Funnel, Touch, Trail
from domain.session import Session, SessionStatus


class MemoryFunnelRepository(FunnelRepository):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def put(self, tenant_id: str, funnel: Funnel) -> None:
        self._store.funnels[(tenant_id, funnel.name)] = funnel

    async def get(self, tenant_id: str, name: str) -> Funnel | None:
        return self._store.funnels.get((tenant_id, name))

    async def all(self, tenant_id: str) -> list[Funnel]:
        return [f for (tenant, _), f in sorted(self._store.funnels.items()) if tenant == tenant_id]

    async def delete(self, tenant_id: str, name: str) -> Funnel | None:
        return self._store.funnels.pop((tenant_id, name), None)


class MemoryFunnelEvents(FunnelEvents):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def trails(
        self, tenant_id: str, kind: str, window: Window, types: frozenset[str]
    ) -> AsyncIterator[Trail]:
        for session in sorted(self._sessions(tenant_id, kind, window), key=lambda s: s.id):
            events = self._store.events.get((tenant_id, session.id), {}).values()
            touches = [
                Touch(e.sequence_no, e.at, e.type, e.label, e.category)
                for e in sorted(events, key=lambda e: (e.at, e.sequence_no))
                if e.type in types
            ]
            if touches:
                yield Trail(session.id, session.status, touches)

    async def statuses(self, tenant_id: str, kind: str, window: Window) -> dict[SessionStatus, int]:
        return dict(Counter(s.status for s in self._sessions(tenant_id, kind, window)))

    def _sessions(self, tenant_id: str, kind: str, window: Window) -> list[Session]:
        return [
            s
            for (tenant, _), s in self._store.sessions.items()
            if tenant == tenant_id and s.kind == kind and s.started_at in window
        ]
