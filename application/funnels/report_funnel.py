"""Report how far the sessions of a funnel's kind got through its stages."""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from application.funnels.ports import FunnelEvents, FunnelRepository, FunnelScope
from application.ports import Clock, Window
from application.reports.report_usage import usage_filter
from domain.errors import NotFound
from domain.funnels import Funnel, FunnelFigures, FunnelGroup, FunnelTally
from domain.session import SessionStatus
from domain.tenants import TenantSettings

DEFAULT_DAYS = 30


@dataclass(frozen=True)
class ReportFunnelQuery:
    tenant_id: str
    name: str
    start: datetime | None = None
    end: datetime | None = None
    settings: TenantSettings = field(default_factory=TenantSettings)  # zone and dimensions
    where: Mapping[str, str] = field(default_factory=dict)  # attributes.<key>=<value>
    group_by: str | None = None  # attributes.<key>


class ReportFunnel:
    """Where the sessions of the funnel's kind that started in the window (`from` inclusive,
    `to` exclusive; by default the last 30 days of the tenant's time zone, today included, or
    the 30 days before `to`'s day; `from` must be before `to`) stopped. A session reaches a stage with the first event matching it at or
    after the moment it reached the stage before, in the order of `at` then `sequence_no` (one
    event reaches one stage; a match before the previous stage was reached does not count).
    Per stage: `reached`; `conversion_from_previous` (reached / the previous stage's reached;
    for the first stage, / sessions) and `conversion_from_start` (reached / sessions), ratios
    rounded half-to-even to 4 decimal places, null when dividing by 0; `dropped_here` (reached
    it, no later stage, and did not complete, whether it ended otherwise or is still active);
    `median_seconds_in_stage` (the median, to the millisecond, of the time from reaching it to
    reaching the next stage over the sessions that reached both; null for the last stage or
    when none did). `exit_statuses` counts the window's sessions by status, every status named.
    `attributes.<key>=<value>` keeps the sessions with those values, and
    `group_by=attributes.<key>` adds the same figures per value in `groups` (sessions without
    it last, as null); both only by declared dimensions. An unknown funnel is not found."""

    def __init__(self, funnels: FunnelRepository, events: FunnelEvents, clock: Clock) -> None:
        self._funnels = funnels
        self._events = events
        self._clock = clock

    async def __call__(self, query: ReportFunnelQuery) -> FunnelFigures:
        # A bad window is wrong for any funnel: judged first.
        now, calendar = self._clock.now(), query.settings.calendar
        window = Window.of_days(query.start, query.end, now, calendar, DEFAULT_DAYS)
        chosen = usage_filter(query.settings, query.where, query.group_by)
        scope = FunnelScope(chosen.dimensions, chosen.group_by)
        funnel = await self._funnels.get(query.tenant_id, query.name)
        if funnel is None:
            raise NotFound(f"no funnel {query.name}")
        return await funnel_figures(self._events, query.tenant_id, funnel, window, scope)


async def funnel_figures(
    events: FunnelEvents, tenant_id: str, funnel: Funnel, window: Window, scope: FunnelScope
) -> FunnelFigures:
    """The funnel over its kind's sessions started in the window and in the scope, as a whole
    and, when the scope groups, per group."""
    tally = FunnelTally(funnel)
    groups: dict[str | None, FunnelTally] = {}
    async for trail in events.trails(tenant_id, funnel.kind, window, funnel.types, scope):
        tally.add(trail)
        if scope.grouped:
            groups.setdefault(trail.group, FunnelTally(funnel)).add(trail)
    statuses = await events.statuses(tenant_id, funnel.kind, window, scope)
    figures = tally.figures(_together(statuses.values()))
    if not scope.grouped:
        return figures
    grouped = [
        FunnelGroup(g, groups.get(g, FunnelTally(funnel)).figures(statuses.get(g, {})))
        for g in sorted({*statuses, *groups}, key=lambda g: (g is None, g or ""))
    ]
    return replace(figures, groups=grouped)


def _together(counts: Iterable[Mapping[SessionStatus, int]]) -> dict[SessionStatus, int]:
    total: Counter[SessionStatus] = Counter()
    for group in counts:
        total.update(group)
    return dict(total)
