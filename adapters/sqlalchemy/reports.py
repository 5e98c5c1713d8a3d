"""Reports computed by the database: GROUP BY and window functions, nothing loaded per session."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Label,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.dimensions import dimension
from adapters.sqlalchemy.engine import reads_only
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.meters import meter_sums
from adapters.sqlalchemy.quantities import from_nanos
from adapters.sqlalchemy.spans import Spans
from adapters.sqlalchemy.tables import sessions
from application.ports import Window
from application.reports.ports import EVERY, Reports
from domain.reports import ResourceActivity, UsageStats, WatchTime, keyed
from domain.rollups import Dimensions
from domain.session import SessionStatus


@raises_storage_errors
class SqlReports(Reports):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = reads_only(engine)
        self._spans = Spans(engine)
        self._sqlite = engine.dialect.name == "sqlite"

    async def watch_time(
        self,
        tenant_id: str,
        resource_id: str,
        window: Window,
        where: Dimensions = EVERY,
        group_by: str | None = None,
    ) -> list[WatchTime]:
        # In start order, a visit adds to the time watched only what reaches past the furthest
        # end of the subject's earlier visits (`reach`): overlapping tabs count once. The window
        # orders by the stored columns so that ix_sessions_resource_viewers feeds it unsorted.
        # Grouped, a subject's visits are taken group by group: in each, its own union.
        per = self._per(sessions.c.subject_id.label("subject"), group_by)
        viewer = (
            (sessions.c.subject_id,)
            if group_by is None
            else (per.expression, sessions.c.subject_id)
        )
        reach = func.max(sessions.c.ended_at).over(
            partition_by=viewer,
            order_by=(sessions.c.started_at, sessions.c.ended_at),
            rows=(None, -1),
        )
        visits = (
            select(
                per.column,
                sessions.c.started_at.label("s"),
                sessions.c.ended_at.label("e"),
                reach.label("reach"),
            )
            .where(
                sessions.c.tenant_id == tenant_id,
                sessions.c.resource_id == resource_id,
                sessions.c.subject_id.is_not(None),
                sessions.c.ended_at.is_not(None),
                *_started_in(window),
                *self._having(where),
            )
            .subquery("visits")
        )
        s, e, r = visits.c.s, visits.c.e, visits.c.reach
        added = case(
            (or_(r.is_(None), s >= r), self._spans.span(s, e)), (e > r, self._spans.span(r, e))
        )
        key = visits.c[per.name]
        query = (
            select(
                key,
                func.count().label("visits"),
                self._spans.seconds(func.sum(self._spans.span(s, e))).label("total_seconds"),
                self._spans.seconds(func.sum(added)).label("unique_seconds"),
            )
            .group_by(key)
            .order_by(key)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        report = []
        for row in rows:
            subject_id, group = keyed(row[0], group_by)
            total, unique = _secs(row.total_seconds), _secs(row.unique_seconds)
            report.append(WatchTime(subject_id, row.visits, total, unique, group))
        return report

    async def resources(
        self,
        tenant_id: str,
        kind: str | None,
        window: Window,
        where: Dimensions = EVERY,
        group_by: str | None = None,
    ) -> list[ResourceActivity]:
        chosen = [sessions.c.tenant_id == tenant_id, *_started_in(window), *self._having(where)]
        if kind is not None:
            chosen.append(sessions.c.kind == kind)
        per = self._per(sessions.c.resource_id.label("resource"), group_by)
        exited = sessions.c.ended_at.is_not(None)
        totals = (
            select(
                per.column,
                func.count().label("sessions"),
                func.count(sessions.c.subject_id.distinct()).label("subjects"),
                func.count(
                    case((sessions.c.subject_id.is_(None), sessions.c.client_key)).distinct()
                ).label("browsers"),
                func.count(sessions.c.ended_at).label("exited"),
                self._spans.seconds(
                    func.sum(
                        case((exited, self._spans.span(sessions.c.started_at, sessions.c.ended_at)))
                    )
                ).label("seconds"),
                func.sum(case((sessions.c.status == SessionStatus.ACTIVE, 1), else_=0)).label(
                    "active"
                ),
            )
            .where(*chosen)
            .group_by(per.expression)
            .cte("totals")
        )
        # Concurrency: +1 at each start, -1 at each end; the running sum's maximum is the peak.
        points = union_all(
            select(per.column, sessions.c.started_at.label("t"), literal(1).label("step")).where(
                *chosen
            ),
            select(per.expression, sessions.c.ended_at, literal(-1)).where(*chosen, exited),
        ).subquery("points")
        running = select(
            points.c[per.name],
            func.sum(points.c.step)
            .over(
                partition_by=points.c[per.name],
                order_by=(points.c.t, points.c.step),
                rows=(None, 0),
            )
            .label("open"),
        ).subquery("running")
        peaks = (
            select(running.c[per.name], func.max(running.c.open).label("peak"))
            .group_by(running.c[per.name])
            .cte("peaks")
        )
        key = totals.c[per.name]
        # A group of sessions without the dimension is NULL, which `=` matches to nothing.
        same = (
            key == peaks.c[per.name]
            if group_by is None
            else key.is_not_distinct_from(peaks.c[per.name])
        )
        query = select(totals, peaks.c.peak).join_from(totals, peaks, same).order_by(key)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        report = []
        for r in rows:
            resource_id, group = keyed(r[0], group_by)
            report.append(
                ResourceActivity(
                    resource_id,
                    r.sessions,
                    r.subjects,
                    r.subjects + r.browsers,
                    r.exited,
                    _secs(r.seconds),
                    int(r.active),
                    int(r.peak),
                    group,
                )
            )
        return report

    def _per(self, own: Label[Any], group_by: str | None) -> "Per":
        """What a report's rows are per: its own column (a resource, a subject) or, grouped,
        the value of a dimension."""
        if group_by is None:
            return Per(own, own.element)
        value = dimension(group_by, self._sqlite)
        return Per(value.label("grouped"), value)

    def _having(self, where: Dimensions) -> list[Any]:
        return [dimension(key, self._sqlite) == value for key, value in where]

    async def usage_stats(self, tenant_id: str, subject_id: str, window: Window) -> UsageStats:
        mine = [
            sessions.c.tenant_id == tenant_id,
            sessions.c.subject_id == subject_id,
            *_started_in(window),
        ]
        totals = select(
            func.count(),
            self._spans.seconds(
                func.sum(self._spans.span(sessions.c.started_at, sessions.c.ended_at))
            ),
            func.coalesce(func.sum(sessions.c.event_count), 0),
            func.coalesce(func.sum(sessions.c.charge_credits), 0),
        ).where(*mine)
        meters = meter_sums().where(*mine)
        async with self._engine.connect() as conn:
            count, seconds, events, credits = (await conn.execute(totals)).one()
            sums = (await conn.execute(meters)).all()
        return UsageStats(
            total_sessions=count,
            total_duration_seconds=_secs(seconds),
            total_events=int(events),
            total_credits_consumed=int(credits),
            meters={m: from_nanos(int(n), bool(d)) for m, n, d in sums},
        )

    async def active(self, tenant_id: str, resource_id: str | None) -> int:
        query = select(func.count()).where(
            sessions.c.tenant_id == tenant_id, sessions.c.status == SessionStatus.ACTIVE
        )
        if resource_id is not None:
            query = query.where(sessions.c.resource_id == resource_id)
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())


@dataclass(frozen=True)
class Per:
    """The column a report's rows are per, labelled, and the expression it labels: one
    expression wherever it is used, so that PostgreSQL sees a dimension's key as the same
    parameter in SELECT and GROUP BY."""

    column: Label[Any]
    expression: ColumnElement[Any]

    @property
    def name(self) -> str:
        return self.column.name


def _started_in(window: Window) -> list[Any]:
    conditions = []
    if window.start is not None:
        conditions.append(sessions.c.started_at >= window.start)
    if window.end is not None:
        conditions.append(sessions.c.started_at < window.end)
    return conditions


def _secs(value: float | Decimal | None) -> float:
    return float(value or 0)
