from collections.abc import Mapping, Sequence
from datetime import datetime

from adapters.memory.store import MemoryStore
from application.funnels.group_tallies import group_tallies
from application.funnels.ports import FunnelDay, FunnelDays, FunnelRow, kept_for
from domain.calendar import Bucket
from domain.funnels import FunnelTally


class MemoryFunnelDays(FunnelDays):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def replace(self, tenant_id: str, funnel: str, day: FunnelDay) -> None:
        self._store.funnel_days[(tenant_id, funnel, day.start)] = day

    async def stored(
        self, tenant_id: str, funnel: str, fingerprint: str, days: Sequence[Bucket]
    ) -> dict[datetime, bool]:
        found = ((day, self._store.funnel_days.get((tenant_id, funnel, day.start))) for day in days)
        return {
            day.start: stored.final
            for day, stored in found
            if stored is not None
            and stored.fingerprint == fingerprint
            and kept_for(day, stored.end)
        }

    async def wholes(
        self, tenant_id: str, funnel: str, starts: Sequence[datetime]
    ) -> list[FunnelTally]:
        return [d.whole for d in self._days(tenant_id, funnel, starts)]

    async def rows(
        self, tenant_id: str, funnel: str, starts: Sequence[datetime], where: Mapping[str, str]
    ) -> list[FunnelRow]:
        return [row for d in self._days(tenant_id, funnel, starts) for row in d.rows]

    async def groups(
        self, tenant_id: str, funnel: str, starts: Sequence[datetime], grouping: str
    ) -> list[tuple[str | None, FunnelTally]]:
        days = self._days(tenant_id, funnel, starts)
        return [pair for d in days for pair in group_tallies(d.rows, grouping).items()]

    async def forget(self, tenant_id: str, funnel: str) -> None:
        for key in [k for k in self._store.funnel_days if k[:2] == (tenant_id, funnel)]:
            del self._store.funnel_days[key]

    def _days(self, tenant_id: str, funnel: str, starts: Sequence[datetime]) -> list[FunnelDay]:
        found = (self._store.funnel_days.get((tenant_id, funnel, s)) for s in starts)
        return [d for d in found if d is not None]
