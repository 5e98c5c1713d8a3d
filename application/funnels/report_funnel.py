"""Report how far the sessions of a funnel's kind got through its stages."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from application.funnels.count_funnel import count_funnel
from application.funnels.ports import FunnelDays, FunnelEvents, FunnelRepository, FunnelScope
from application.ports import Clock, Window
from application.reports.report_usage import usage_filter
from domain.errors import NotFound
from domain.funnels import FunnelFigures
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
    `median_seconds_in_stage` (the median of the time from reaching it to reaching the next
    stage over the sessions that reached both, each time counted to 3 significant digits of a
    millisecond; null for the last stage or when none did). `exit_statuses` counts the window's sessions by status, every status named.
    `attributes.<key>=<value>` keeps the sessions with those values, and
    `group_by=attributes.<key>` adds the same figures per value in `groups` (sessions without
    it last, as null); both only by declared dimensions. An unknown funnel is not found.

    Days rolled up for good (RollUpFunnels) are read from their rollups, the rest of the
    window from the events: the figures are the same either way."""

    def __init__(
        self,
        funnels: FunnelRepository,
        events: FunnelEvents,
        days: FunnelDays,
        clock: Clock,
    ) -> None:
        self._funnels = funnels
        self._events = events
        self._days = days
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
        count = await count_funnel(
            self._events, self._days, query.tenant_id, funnel, window, query.settings, scope
        )
        return count.figures(scope.grouped)
