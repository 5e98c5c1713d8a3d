"""Erasure in memory: each method runs to its end without suspending, so it is atomic."""

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from adapters.ledger_holds import holding
from adapters.memory.store import MemoryStore
from application.credits.ports import UnfinishedErasures
from application.data_rights.ports import (
    EndPlace,
    Erased,
    Erasure,
    Removed,
    SessionPlace,
    SessionsOf,
)
from domain.erasure import Forgetting, erased_error
from domain.plans import counted_by_a_limit
from domain.session import ChargeState

BILLED_STATES = (ChargeState.PENDING, ChargeState.CHARGED)
Done = TypeVar("Done")


class MemoryErasure(Erasure, UnfinishedErasures):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def sessions(
        self, tenant_id: str, of: SessionsOf, limit: int, after: SessionPlace | None = None
    ) -> list[SessionPlace]:
        places = sorted(
            (s.started_at, s.id)
            for (tenant, _), s in self._store.sessions.items()
            if tenant == tenant_id
            and (after is None or (s.started_at, s.id) > (after.started_at, after.id))
            and (of.subject_id is None or s.subject_id == of.subject_id)
            and (of.resource_id is None or s.resource_id == of.resource_id)
        )
        return [SessionPlace(*place) for place in places[:limit]]

    async def billed(self, tenant_id: str, session_ids: Sequence[str]) -> set[str]:
        return {i for i in session_ids if self._billed(tenant_id, i)}

    async def expired_sessions(
        self,
        tenant_id: str,
        ended_before: datetime,
        limit: int,
        counted: frozenset[str],
        after: EndPlace | None = None,
    ) -> list[EndPlace]:
        ended = sorted(
            (s.ended_at, s.id)
            for (tenant, _), s in self._store.sessions.items()
            if tenant == tenant_id
            and s.ended_at is not None
            and s.ended_at < ended_before
            and (after is None or (s.ended_at, s.id) > (after.ended_at, after.id))
            and not self._billed(tenant_id, s.id)
            and not counted_by_a_limit(s, counted)
        )
        return [EndPlace(*place) for place in ended[:limit]]

    async def clear_events(self, tenant_id: str, session_ids: Sequence[str], limit: int) -> int:
        return self._clear_events(tenant_id, session_ids, limit)

    async def delete_events(self, tenant_id: str, session_ids: Sequence[str], limit: int) -> int:
        deleted = 0
        for session_id in session_ids:
            numbered = self._store.events.get((tenant_id, session_id), {})
            gone = sorted(numbered)[: limit - deleted]
            for number in gone:
                del numbered[number]
            session = self._store.sessions.get((tenant_id, session_id))
            if session is not None:  # a session kept (billed) keeps its gaps
                session.events_deleted(gone)
            deleted += len(gone)
        return deleted

    async def erase_sessions(
        self, tenant_id: str, session_ids: Sequence[str], forgetting: Forgetting
    ) -> Erased:
        erased = [
            session_id
            for session_id in session_ids
            if (session := self._store.sessions.get((tenant_id, session_id))) is not None
            and forgetting.erase(session)
        ]
        events = self._clear_events(tenant_id, erased, None)
        errors = sales = 0
        for key, error in self._store.errors.items():
            if key[0] == tenant_id and error.session_id in erased:
                self._store.errors[key] = erased_error(error)
                errors += 1
        for key, sale in self._store.sales.items():
            if key[0] == tenant_id and sale.session_id in erased:
                self._store.sales[key] = replace(
                    sale, attributes=forgetting.attributes(sale.attributes)
                )
                sales += 1
        return Erased(len(erased), events, errors, sales)

    async def delete_sessions(self, tenant_id: str, session_ids: Sequence[str]) -> Removed:
        kept = frozenset(i for i in session_ids if self._billed(tenant_id, i))
        sessions = events = 0
        for session_id in session_ids:
            if (
                session_id in kept
                or self._store.sessions.pop((tenant_id, session_id), None) is None
            ):
                continue
            sessions += 1
            events += len(self._store.events.pop((tenant_id, session_id), {}))
            for key in [k for k in self._store.tracks if k[:2] == (tenant_id, session_id)]:
                del self._store.tracks[key]
        return Removed(sessions, events, kept)

    async def pseudonym_for(self, tenant_id: str, subject_id: str, drawn: str, at: datetime) -> str:
        return self._store.erasures_under_way.setdefault((tenant_id, subject_id), (drawn, at))[0]

    async def unfinished(
        self, tenant_id: str, started_before: datetime, limit: int, after: str | None = None
    ) -> list[str]:
        begun = sorted(
            subject
            for (t, subject), (_, at) in self._store.erasures_under_way.items()
            if t == tenant_id and at < started_before and (after is None or subject > after)
        )
        return begun[:limit]

    async def gave_out(self, tenant_id: str, pseudonym: str) -> bool:
        under_way = self._store.erasures_under_way.items()
        return any(t == tenant_id and p == pseudonym for (t, _), (p, _) in under_way)

    async def kept(self, tenant_id: str, subject_id: str) -> str | None:
        kept = self._store.erasures_under_way.get((tenant_id, subject_id))
        return None if kept is None else kept[0]

    async def finished(self, tenant_id: str, subject_id: str, pseudonym: str) -> None:
        under_way = self._store.erasures_under_way
        if (kept := under_way.get((tenant_id, subject_id))) is not None and kept[0] == pseudonym:
            del under_way[(tenant_id, subject_id)]

    async def with_ledgers_held(
        self, tenant_id: str, subject_ids: Collection[str], work: Callable[[], Awaitable[Done]]
    ) -> Done:
        ledgers = {(tenant_id, s) for s in subject_ids}
        held = self._store.held_ledgers

        async def hold() -> bool:
            if held & ledgers:
                return False
            held.update(ledgers)
            return True

        async def give_back() -> None:
            held.difference_update(ledgers)

        return await holding(hold, give_back, work)

    async def move_subject(
        self, tenant_id: str, subject_id: str, pseudonym: str, limit: int
    ) -> int:
        store, moved = self._store, 0
        for i, entry in enumerate(store.ledger):
            if moved < limit and (entry.tenant_id, entry.subject_id) == (tenant_id, subject_id):
                # see Erasure.move_subject
                store.ledger[i] = replace(entry, subject_id=pseudonym, idempotency_key=None)
                moved += 1
        for i, alert in enumerate(store.alerts):
            if moved < limit and (alert.tenant_id, alert.subject_id) == (tenant_id, subject_id):
                store.alerts[i] = replace(alert, subject_id=pseudonym)
                moved += 1
        if moved < limit and (
            subscription := store.subscriptions.pop((tenant_id, subject_id), None)
        ):
            store.subscriptions[(tenant_id, pseudonym)] = replace(
                subscription, subject_id=pseudonym
            )
            moved += 1
        history = store.subscription_history.get((tenant_id, subject_id), [])
        while moved < limit and history:
            past = history.pop(0)
            store.subscription_history.setdefault((tenant_id, pseudonym), []).append(
                replace(past, subscription=replace(past.subscription, subject_id=pseudonym))
            )
            moved += 1
        if not history:
            store.subscription_history.pop((tenant_id, subject_id), None)
        for key in [k for k in store.resources if k[:2] == (tenant_id, subject_id)]:
            if moved < limit:
                registration = store.resources.pop(key)
                store.resources[(tenant_id, pseudonym, key[2])] = replace(
                    registration, subject_id=pseudonym
                )
                moved += 1
        for tenant, refused in list(store.refused_starts):
            if moved < limit and (tenant, refused.subject_id) == (tenant_id, subject_id):
                count = store.refused_starts.pop((tenant, refused))
                store.refused_starts[(tenant, replace(refused, subject_id=pseudonym))] = count
                moved += 1
        return moved

    async def delete_rollups(self, tenant_id: str, resource_id: str, limit: int) -> int:
        buckets = [
            key
            for key, rollup in sorted(self._store.rollups.items(), key=lambda item: item[0][2])
            if key[0] == tenant_id and any(a.resource_id == resource_id for a in rollup.activity)
        ][:limit]
        removed = 0
        for key in buckets:
            rollup = self._store.rollups[key]
            activity = [a for a in rollup.activity if a.resource_id != resource_id]
            removed += len(rollup.activity) - len(activity)
            self._store.rollups[key] = replace(rollup, activity=activity)
        for day_key, day in self._store.funnel_days.items():
            if day_key[0] == tenant_id:
                rows = [row for row in day.rows if row.resource_id != resource_id]
                self._store.funnel_days[day_key] = replace(day, final=False, rows=rows)
        return removed

    def _billed(self, tenant_id: str, session_id: str) -> bool:
        session = self._store.sessions.get((tenant_id, session_id))
        return (
            (session is not None and session.charge_state in BILLED_STATES)
            or any(
                (e.tenant_id, e.session_id) == (tenant_id, session_id) for e in self._store.ledger
            )
            or any(
                key[0] == tenant_id and sale.session_id == session_id
                for key, sale in self._store.sales.items()
            )
        )

    def _clear_events(self, tenant_id: str, session_ids: Sequence[str], limit: int | None) -> int:
        cleared = 0
        for session_id in session_ids:
            numbered = self._store.events.get((tenant_id, session_id), {})
            for number, event in sorted(numbered.items()):
                if limit is not None and cleared >= limit:
                    return cleared
                if event.data is not None or event.label is not None:
                    numbered[number] = replace(event, data=None, label=None)
                    cleared += 1
        return cleared
