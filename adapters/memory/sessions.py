from collections.abc import Collection
from datetime import datetime, timedelta

from adapters.memory.store import MemoryStore
from application.sessions.ports import SessionFilter, SessionPosition, SessionRepository
from domain.charging import ChargeOnClose
from domain.errors import NotFound
from domain.event_gaps import find_gaps, gaps_beside_deleted
from domain.plans import SessionLimit
from domain.rollups import dimensions_of
from domain.session import ChargeState, Closing, Exit, Session, WriteCheck
from domain.staleness import Staleness


class MemorySessionRepository(SessionRepository):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def add(self, session: Session, limit: SessionLimit | None = None) -> bool:
        key = (session.tenant_id, session.id)
        if key in self._store.sessions:
            return False
        if limit is not None:
            limit.admit(
                await self.count_started(
                    session.tenant_id, limit.subject_id, limit.resource_id, limit.kinds
                )
            )
        self._store.sessions[key] = session.copy()
        return True

    async def count_started(
        self, tenant_id: str, subject_id: str, resource_id: str, kinds: frozenset[str]
    ) -> int:
        return sum(
            1
            for (tenant, _), s in self._store.sessions.items()
            if tenant == tenant_id
            and (s.subject_id, s.resource_id) == (subject_id, resource_id)
            and s.kind in kinds
        )

    async def existing(self, tenant_id: str, session_ids: Collection[str]) -> set[str]:
        return {i for i in session_ids if (tenant_id, i) in self._store.sessions}

    async def get(self, tenant_id: str, session_id: str) -> Session | None:
        stored = self._store.sessions.get((tenant_id, session_id))
        return None if stored is None else self._read(stored)

    async def find(
        self,
        tenant_id: str,
        where: SessionFilter,
        limit: int,
        after: SessionPosition | None = None,
    ) -> list[Session]:
        found = [
            s
            for (tenant, _), s in self._store.sessions.items()
            if tenant == tenant_id
            and _matches(s, where)
            and (after is None or (s.started_at, s.id) < (after.started_at, after.id))
        ]
        found.sort(key=lambda s: (s.started_at, s.id), reverse=True)
        return [self._read(s) for s in found[:limit]]

    async def heartbeat(self, tenant_id: str, session_id: str, at: datetime) -> Session:
        stored = self._stored(tenant_id, session_id)
        stored.heartbeat(at)
        return self._read(stored)

    async def sign_of_life(
        self, tenant_id: str, session_id: str, at: datetime, now: datetime, window: timedelta
    ) -> Session:
        stored = self._stored(tenant_id, session_id)
        stored.sign_of_life(at, now, window)
        return self._read(stored)

    async def close(
        self,
        tenant_id: str,
        session_id: str,
        exit: Exit,
        rated_kinds: frozenset[str],
        now: datetime,
        window: timedelta,
        check: WriteCheck | None = None,
        charge: ChargeOnClose | None = None,
    ) -> tuple[Session, Closing]:
        # No await between reading and writing: one event loop runs this step whole.
        stored = self._stored(tenant_id, session_id)
        if check is not None:
            check(stored)
        closing = stored.close(exit, rated_kinds, now, window)
        subject = stored.subject_id
        if (
            charge is not None
            and closing.changed
            and subject is not None
            and (tenant_id, subject) not in self._store.held_ledgers
        ):
            balance = self._store.balance_of(tenant_id, subject)
            if (settled := charge.settlement(stored, balance)) is not None:
                self._store.record(stored, settled.settlement, charge.at)
        return self._read(stored), closing

    async def time_out_idle(
        self,
        tenant_id: str,
        staleness: Staleness,
        limit: int,
        rated_kinds: frozenset[str],
        now: datetime,
        window: timedelta,
    ) -> list[Session]:
        # `now` and `window` go unused: an append counts its events in its own atomic step, so
        # none are left uncounted here.
        stale = [
            s
            for (tenant, _), s in self._store.sessions.items()
            if tenant == tenant_id and staleness.is_stale(s)
        ][:limit]
        for session in stale:
            session.close(session.time_out(), rated_kinds)
        return [self._read(s) for s in stale]

    async def pending_charges(
        self, tenant_id: str, limit: int, after: str | None = None
    ) -> list[Session]:
        pending = sorted(
            (
                s
                for (tenant, _), s in self._store.sessions.items()
                if tenant == tenant_id
                and s.charge_state is ChargeState.PENDING
                and (after is None or s.id > after)
            ),
            key=lambda s: s.id,
        )
        return [self._read(s) for s in pending[:limit]]

    def _stored(self, tenant_id: str, session_id: str) -> Session:
        stored = self._store.sessions.get((tenant_id, session_id))
        if stored is None:
            raise NotFound(f"no session {session_id}")
        return stored

    def _read(self, stored: Session) -> Session:
        return as_read(self._store, stored)


def as_read(store: MemoryStore, stored: Session) -> Session:
    """A stored session as the store answers it: a copy, with its event gaps."""
    session = stored.copy()
    numbers = sorted(store.events.get((stored.tenant_id, stored.id), {}))
    session.event_gaps = gaps_beside_deleted(
        find_gaps(numbers), max(numbers, default=0), stored.max_sequence_no, stored.deleted_events
    )
    return session


def _matches(session: Session, where: SessionFilter) -> bool:
    return (
        (where.kind is None or session.kind == where.kind)
        and (where.resource_id is None or session.resource_id == where.resource_id)
        and (where.subject_id is None or session.subject_id == where.subject_id)
        and (where.client_key is None or session.client_key == where.client_key)
        and (where.status is None or session.status == where.status)
        and (where.started_from is None or session.started_at >= where.started_from)
        and (where.started_to is None or session.started_at < where.started_to)
        and all(
            dimensions_of(session.attributes, [key]) == ((key, value),)
            for key, value in where.attributes.items()
        )
    )
