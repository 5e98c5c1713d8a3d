from collections import defaultdict

from adapters.memory.store import MemoryStore
from application.ports import Window
from application.reports.ports import EVERY, Reports
from domain.reports import (
    ResourceActivity,
    UsageStats,
    WatchTime,
    group_order,
    keyed,
    peak_concurrency,
    unique_seconds,
)
from domain.rollups import Dimensions, dimensions_of
from domain.session import Session
from domain.usage import Usage, add_usage


class MemoryReports(Reports):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def watch_time(
        self,
        tenant_id: str,
        resource_id: str,
        window: Window,
        where: Dimensions = EVERY,
        group_by: str | None = None,
    ) -> list[WatchTime]:
        rows: dict[str | None, dict[str, list[Session]]] = defaultdict(lambda: defaultdict(list))
        for s in self._started_in(tenant_id, window, where):
            if s.resource_id == resource_id and s.subject_id is not None and s.ended_at:
                key = s.subject_id if group_by is None else _value(s, group_by)
                rows[key][s.subject_id].append(s)
        report = []
        for key, viewers in sorted(rows.items(), key=lambda row: group_order(row[0])):
            subject_id, group = keyed(key, group_by)
            visits = [s for sessions in viewers.values() for s in sessions]
            report.append(
                WatchTime(
                    subject_id,
                    len(visits),
                    sum(s.duration_seconds or 0 for s in visits),
                    # Each viewer's overlapping visits (two tabs) count once.
                    sum(map(_watched, viewers.values())),
                    group,
                )
            )
        return report

    async def resources(
        self,
        tenant_id: str,
        kind: str | None,
        window: Window,
        where: Dimensions = EVERY,
        group_by: str | None = None,
    ) -> list[ResourceActivity]:
        rows: dict[str | None, list[Session]] = defaultdict(list)
        for s in self._started_in(tenant_id, window, where):
            if kind is None or s.kind == kind:
                rows[s.resource_id if group_by is None else _value(s, group_by)].append(s)
        report = []
        for key, found in sorted(rows.items(), key=lambda row: group_order(row[0])):
            exited = [s for s in found if s.ended_at is not None]
            resource_id, group = keyed(key, group_by)
            report.append(
                ResourceActivity(
                    resource_id,
                    total_sessions=len(found),
                    unique_subjects=len({s.subject_id for s in found if s.subject_id}),
                    unique_visitors=len(
                        {(s.subject_id, s.client_key if s.is_anonymous else None) for s in found}
                    ),
                    exited_sessions=len(exited),
                    total_duration_seconds=sum(s.duration_seconds or 0 for s in exited),
                    active_now=sum(s.is_active for s in found),
                    peak_concurrency=peak_concurrency((s.started_at, s.ended_at) for s in found),
                    group=group,
                )
            )
        return report

    async def usage_stats(self, tenant_id: str, subject_id: str, window: Window) -> UsageStats:
        mine = [s for s in self._started_in(tenant_id, window) if s.subject_id == subject_id]
        meters: Usage = {}
        for s in mine:
            meters = add_usage(meters, s.usage)
        return UsageStats(
            total_sessions=len(mine),
            total_duration_seconds=sum(s.duration_seconds or 0 for s in mine),
            total_events=sum(s.event_count for s in mine),
            total_credits_consumed=sum(s.charge.credits for s in mine if s.charge),
            meters=meters,
        )

    async def active(self, tenant_id: str, resource_id: str | None) -> int:
        return sum(
            1
            for (tenant, _), s in self._store.sessions.items()
            if tenant == tenant_id
            and s.is_active
            and (resource_id is None or s.resource_id == resource_id)
        )

    def _started_in(
        self, tenant_id: str, window: Window, where: Dimensions = EVERY
    ) -> list[Session]:
        keys = [key for key, _ in where]
        return [
            s
            for (tenant, _), s in self._store.sessions.items()
            if tenant == tenant_id
            and (window.start is None or s.started_at >= window.start)
            and (window.end is None or s.started_at < window.end)
            and set(where) <= set(dimensions_of(s.attributes, keys))
        ]


def _watched(visits: list[Session]) -> float:
    return unique_seconds((s.started_at, s.ended_at) for s in visits if s.ended_at)


def _value(session: Session, key: str) -> str | None:
    """The session's value of the dimension `key`, as domain.rollups.dimensions_of spells it."""
    return dict(dimensions_of(session.attributes, [key])).get(key)
