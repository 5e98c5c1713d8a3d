from collections.abc import Callable
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import TypeVar

from adapters.memory.store import MemoryStore
from application.retention.ports import Retention
from domain.calendar import Period

R = TypeVar("R")


class MemoryRetention(Retention):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def delete_snapshots(self, tenant_id: str, taken_before: datetime, limit: int) -> int:
        old = [
            key
            for key in sorted(self._store.snapshots, key=lambda k: k[2])
            if key[0] == tenant_id and key[2] < taken_before
        ][:limit]
        for key in old:
            del self._store.snapshots[key]
        return len(old)

    async def delete_events(self, tenant_id: str, before: datetime, limit: int) -> int:
        old = [
            (session_id, number)
            for (tenant, session_id), numbered in self._store.events.items()
            if tenant == tenant_id
            for number, event in numbered.items()
            if event.at < before
        ][:limit]
        for session_id, number in old:
            del self._store.events[(tenant_id, session_id)][number]
        for session_id, numbers in groupby(sorted(old), key=itemgetter(0)):
            session = self._store.sessions.get((tenant_id, session_id))
            if session is not None:
                session.events_deleted(number for _, number in numbers)
        return len(old)

    async def delete_errors(self, tenant_id: str, before: datetime, limit: int) -> int:
        return _delete_old(self._store.errors, tenant_id, lambda e: e.at < before, limit)

    async def delete_metrics(self, tenant_id: str, started_before: datetime, limit: int) -> int:
        return _delete_old(
            self._store.metrics, tenant_id, lambda m: m.started_at < started_before, limit
        )

    async def forget_webhooks(self, tenant_id: str, received_before: datetime, limit: int) -> int:
        forgotten = 0
        for memory in (self._store.webhooks, self._store.finished_rooms):
            old = sorted(
                (at, key)
                for key, at in memory.items()
                if key[0] == tenant_id and at < received_before
            )[: limit - forgotten]
            for _, key in old:
                del memory[key]
            forgotten += len(old)
        return forgotten

    async def delete_rollups(
        self, tenant_id: str, period: Period, started_before: datetime, limit: int
    ) -> int:
        old = [
            key
            for key in sorted(self._store.rollups, key=lambda k: k[2])
            if key[:2] == (tenant_id, period) and key[2] < started_before
        ][:limit]
        for key in old:
            del self._store.rollups[key]
        if period is Period.DAY:  # funnels' days go with the days (a few a day)
            days = self._store.funnel_days
            for day in [k for k in days if k[0] == tenant_id and k[2] < started_before]:
                del days[day]
        return len(old)


def _delete_old(
    records: dict[tuple[str, str], R], tenant_id: str, is_old: Callable[[R], bool], limit: int
) -> int:
    old = [key for key, record in records.items() if key[0] == tenant_id and is_old(record)]
    for key in old[:limit]:
        del records[key]
    return len(old[:limit])
