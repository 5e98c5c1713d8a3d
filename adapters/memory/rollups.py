from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from adapters.memory.store import MemoryStore
from application.ports import Window
from application.rollups.figures_from_found import figures_from_found
from application.rollups.ports import RollupLease, RollupLeases, RollupRepository, UsageSource
from domain.calendar import Calendar, Period
from domain.error_reports import Severity
from domain.rollups import (
    Activity,
    Dimensions,
    Rollup,
    UsageFigures,
    UsageFilter,
    dimensions_of,
    overlap_seconds,
)
from domain.sales import SaleStatus
from domain.session import Session


class MemoryUsageSource(UsageSource):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def activity(
        self, tenant_id: str, start: datetime, end: datetime, dimensions: Sequence[str] = ()
    ) -> list[Activity]:
        by_key: dict[tuple[str, str, Dimensions], Activity] = {}

        def add(s: Session, **figures: Any) -> None:
            more = Activity(s.kind, s.resource_id, **figures, dimensions=keys[s.id])
            key = (s.kind, s.resource_id, more.dimensions)
            by_key[key] = by_key.get(key, Activity(*key[:2], dimensions=key[2])) + more

        sessions = {
            sid: s for (tenant, sid), s in self._store.sessions.items() if tenant == tenant_id
        }
        keys = {sid: dimensions_of(s.attributes, dimensions) for sid, s in sessions.items()}
        length = end - start
        for s in sessions.values():
            seconds = overlap_seconds(s.started_at, s.ended_at or s.last_seen_at, start, length)
            ended_here = s.ended_at is not None and start <= s.ended_at < end
            figures = {
                "sessions_started": int(start <= s.started_at < end),
                "sessions_ended": int(ended_here),
                "active_seconds": seconds,
                "meters": s.usage if ended_here else {},
                "ended_statuses": {s.status.value: 1} if ended_here else {},
                "ended_seconds": s.duration_seconds if ended_here else 0.0,
            }
            if any(figures.values()):
                add(s, **figures)
        for (tenant, sid), numbered in self._store.events.items():
            in_bucket = sum(1 for e in numbered.values() if start <= e.at < end)
            if tenant == tenant_id and in_bucket:
                add(sessions[sid], events=in_bucket)
        for (tenant, sid, _), (track, _) in self._store.tracks.items():
            if tenant != tenant_id or track.published_at is None or track.unpublished_at is None:
                continue
            seconds = overlap_seconds(track.published_at, track.unpublished_at, start, length)
            if seconds:
                add(sessions[sid], track_seconds={track.meter: seconds})
        for (tenant, _), error in self._store.errors.items():
            if tenant == tenant_id and error.session_id in sessions and start <= error.at < end:
                fatal = int(error.severity is Severity.FATAL)
                add(sessions[error.session_id], errors=1, fatal_errors=fatal)
        for (tenant, _), sale in self._store.sales.items():
            if tenant != tenant_id or sale.session_id not in sessions:
                continue
            if not start <= sale.occurred_at < end:
                continue
            net = sale.amounts.net
            if sale.status is SaleStatus.COMPLETED:
                add(
                    sessions[sale.session_id],
                    sales={sale.currency: 1},
                    sales_net={sale.currency: net},
                )
            elif sale.status is SaleStatus.REFUNDED:
                add(sessions[sale.session_id], sales_net={sale.currency: -net})
        return [by_key[k] for k in sorted(by_key)]

    async def earliest_active_start(self, tenant_id: str) -> datetime | None:
        return min((s.started_at for s in self._active(tenant_id)), default=None)

    async def earliest_active_seen(self, tenant_id: str) -> datetime | None:
        return min((s.last_seen_at for s in self._active(tenant_id)), default=None)

    def _active(self, tenant_id: str) -> list[Session]:
        sessions = self._store.sessions.items()
        return [s for (tenant, _), s in sessions if tenant == tenant_id and s.is_active]


class MemoryRollupRepository(RollupRepository):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def replace(self, tenant_id: str, rollup: Rollup) -> None:
        self._store.rollups[(tenant_id, rollup.period, rollup.start)] = rollup

    async def find(
        self,
        tenant_id: str,
        period: Period,
        window: Window,
        kind: str | None = None,
        resource_id: str | None = None,
    ) -> list[Rollup]:
        found = []
        for (tenant, p, start), rollup in sorted(self._store.rollups.items()):
            inside = (window.start is None or window.start <= start) and (
                window.end is None or start < window.end
            )
            if tenant == tenant_id and p == period and inside:
                activity = [
                    a
                    for a in rollup.activity
                    if kind in (None, a.kind) and resource_id in (None, a.resource_id)
                ]
                found.append(replace(rollup, activity=activity))
        return found

    async def figures(
        self,
        tenant_id: str,
        size: Period,
        window: Window,
        calendar: Calendar,
        chosen: UsageFilter,
    ) -> list[UsageFigures]:
        return await figures_from_found(self, tenant_id, size, window, calendar, chosen)


class MemoryRollupLeases(RollupLeases):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def acquire(
        self, tenant_id: str, holder: str, now: datetime, until: datetime
    ) -> RollupLease | None:
        held_by, held_until, resume_from, cut = self._store.rollup_leases.get(
            tenant_id, (None, None, None, None)
        )
        if held_by is not None and held_until is not None and held_until > now:
            return None
        rewound = self._store.rollup_rewinds.pop(tenant_id, None)
        if rewound is not None:
            resume_from = rewound if resume_from is None else min(resume_from, rewound)
        self._store.rollup_leases[tenant_id] = (holder, until, resume_from, cut)
        return RollupLease(holder, resume_from, cut)

    async def renew(self, tenant_id: str, holder: str, until: datetime) -> bool:
        held_by, _, resume_from, cut = self._store.rollup_leases.get(
            tenant_id, (None, None, None, None)
        )
        if held_by != holder:
            return False
        self._store.rollup_leases[tenant_id] = (holder, until, resume_from, cut)
        return True

    async def release(
        self, tenant_id: str, holder: str, resume_from: datetime, cut: str | None
    ) -> None:
        if self._store.rollup_leases.get(tenant_id, (None,))[0] == holder:
            self._store.rollup_leases[tenant_id] = (None, None, resume_from, cut)

    async def rewind(self, tenant_id: str, to: datetime) -> None:
        known = self._store.rollup_rewinds.get(tenant_id, to)
        self._store.rollup_rewinds[tenant_id] = min(known, to)
