"""Admins read one day of the tenant's calendar per store, from the rollups."""

from dataclasses import dataclass, field, replace
from datetime import date

from application.funnels.count_funnel import count_funnel
from application.funnels.ports import FunnelDays, FunnelEvents, FunnelRepository, FunnelScope
from application.ports import Clock, Window
from application.rollups.ports import RollupRepository
from domain.calendar import Period
from domain.daily_summary import DailyFigures, DailySummary
from domain.errors import InvalidInput
from domain.rollups import ATTRIBUTES, UsageFilter
from domain.tenants import TenantSettings

RESOURCE = "resource_id"


@dataclass(frozen=True)
class ReportDailyQuery:
    tenant_id: str
    day: str | None = None  # YYYY-MM-DD; None: today
    group_by: str = RESOURCE
    kind: str | None = None
    settings: TenantSettings = field(default_factory=TenantSettings)  # zone and dimensions


class ReportDaily:
    """One day of the tenant's time zone (`date`, YYYY-MM-DD; by default today), per resource or
    per value of a declared dimension (`group_by=resource_id|attributes.<key>`; sessions without
    it last, as null), optionally of one `kind`: sessions started that day; of those that ended
    that day, how many did and how (completed, abandoned, timed out), the completion rate
    (completed among them, 4 places) and their average duration (start to end, to the
    millisecond; both null when none ended); the events that day; the device errors that day
    naming the group's sessions (and the fatal ones); and its sessions' sales that day per
    currency (completed ones counted; net less the refunds', exact). Read from the day's
    rollup, as of the last rollup run; a day not rolled up yet has no groups.

    When the tenant has exactly one funnel (of the `kind` asked for, if one is), each group also
    gives that funnel's conversion: of its sessions of the funnel's kind started that day, the
    share that reached the last stage (4 places; null without such sessions). That figure is
    read as the funnel report reads it: from the funnel's rollup once the day is rolled up for
    good, from the day's events until then."""

    def __init__(
        self,
        rollups: RollupRepository,
        funnels: FunnelRepository,
        funnel_events: FunnelEvents,
        funnel_days: FunnelDays,
        clock: Clock,
    ) -> None:
        self._rollups = rollups
        self._funnels = funnels
        self._funnel_events = funnel_events
        self._funnel_days = funnel_days
        self._clock = clock

    async def __call__(self, query: ReportDailyQuery) -> DailySummary:
        calendar = query.settings.calendar
        if query.day is None:
            day = calendar.bucket(Period.DAY, self._clock.now())
        else:
            day = calendar.day(_date("date", query.day))
        chosen, window = _grouping(query), Window(day.start, day.end)
        found = await self._rollups.figures(query.tenant_id, Period.DAY, window, calendar, chosen)
        groups = [DailyFigures.of(f) for f in found]
        funnels = [
            f for f in await self._funnels.all(query.tenant_id) if query.kind in (None, f.kind)
        ]
        if len(funnels) != 1:
            return DailySummary(day, groups)
        (funnel,) = funnels
        scope = FunnelScope(group_by=chosen.group_by, group_by_resource=chosen.group_by_resource)
        count = await count_funnel(
            self._funnel_events,
            self._funnel_days,
            query.tenant_id,
            funnel,
            window,
            query.settings,
            scope,
        )
        figures = count.figures(grouped=True)
        conversion = {g.group: g.figures.stages[-1].conversion_from_start for g in figures.groups}
        converted = [replace(g, funnel_conversion=conversion.get(g.group)) for g in groups]
        return DailySummary(day, converted, funnel.name)


def _grouping(query: ReportDailyQuery) -> UsageFilter:
    if query.group_by == RESOURCE:
        return UsageFilter(kind=query.kind, group_by_resource=True)
    key = query.group_by.removeprefix(ATTRIBUTES)
    if key == query.group_by:
        raise InvalidInput("group_by", "must be resource_id or attributes.<key>")
    return UsageFilter(kind=query.kind, group_by=query.settings.dimension("group_by", key))


def _date(field: str, text: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(field, "must be a date, YYYY-MM-DD") from None
    if len(text) != 10 or not 2000 <= day.year <= 2999:
        raise InvalidInput(field, "must be a date, YYYY-MM-DD, in 2000-2999")
    return day
