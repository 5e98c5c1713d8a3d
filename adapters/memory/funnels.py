from collections import Counter
from collections.abc import AsyncIterator

from adapters.memory.store import MemoryStore
from application.funnels.ports import ALL_SESSIONS, FunnelEvents, FunnelRepository, FunnelScope
from application.ports import Window
from domain.funnels import Funnel, Touch, Trail
from domain.rollups import dimensions_of
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
        self,
        tenant_id: str,
        kind: str,
        window: Window,
        types: frozenset[str],
        scope: FunnelScope = ALL_SESSIONS,
    ) -> AsyncIterator[Trail]:
        chosen = self._sessions(tenant_id, kind, window, scope)
        for session in sorted(chosen, key=lambda s: s.id):
            events = self._store.events.get((tenant_id, session.id), {}).values()
            touches = [
                Touch(e.sequence_no, e.at, e.type, e.label, e.category)
                for e in sorted(events, key=lambda e: (e.at, e.sequence_no))
                if e.type in types
            ]
            if touches:
                yield Trail(session.id, session.status, touches, _group(session, scope))

    async def statuses(
        self, tenant_id: str, kind: str, window: Window, scope: FunnelScope = ALL_SESSIONS
    ) -> dict[str | None, dict[SessionStatus, int]]:
        counts: dict[str | None, Counter[SessionStatus]] = {}
        for s in self._sessions(tenant_id, kind, window, scope):
            counts.setdefault(_group(s, scope), Counter())[s.status] += 1
        return {group: dict(counted) for group, counted in counts.items()}

    def _sessions(
        self, tenant_id: str, kind: str, window: Window, scope: FunnelScope
    ) -> list[Session]:
        return [
            s
            for (tenant, _), s in self._store.sessions.items()
            if tenant == tenant_id
            and s.kind == kind
            and s.started_at in window
            and all(_value(s, k) == v for k, v in scope.where.items())
        ]


def _value(session: Session, key: str) -> str | None:
    return dict(dimensions_of(session.attributes, [key])).get(key)


def _group(session: Session, scope: FunnelScope) -> str | None:
    return scope.group_of(session.resource_id, dimensions_of(session.attributes, scope.keys))
