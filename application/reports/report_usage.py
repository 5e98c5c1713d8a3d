"""Admins read usage by hour, day, week or month from the rollups."""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from application.ports import Clock, Window
from application.rollups.ports import RollupRepository
from domain.calendar import Bucket, Calendar, Period, period
from domain.errors import InvalidInput
from domain.rollups import ATTRIBUTES, UsageFigures, UsageFilter
from domain.tenants import TenantSettings

MAX_BUCKETS = 1000
DEFAULT_BUCKETS = {Period.HOUR: 24, Period.DAY: 30, Period.WEEK: 12, Period.MONTH: 12}


@dataclass(frozen=True)
class ReportUsageQuery:
    tenant_id: str
    bucket: str
    start: datetime | None = None
    end: datetime | None = None
    kind: str | None = None
    resource_id: str | None = None
    settings: TenantSettings = field(default_factory=TenantSettings)  # zone and dimensions
    where: Mapping[str, str] = field(default_factory=dict)  # attributes.<key>=<value>
    group_by: str | None = None  # attributes.<key>


class ReportUsage:
    """Usage by hour, day, week or month, read from the rollups (fast however much raw data
    there is): the buckets rolled up that start in the window asked for (`from` inclusive, `to`
    exclusive), oldest first. Hours are UTC hours; days, ISO weeks (from Monday) and months are
    those of the tenant's time zone, each with its label in local time. By default the window
    holds the current bucket and the ones before it: 24 hours, 30 days, 12 weeks or 12 months;
    `from` must be before `to`, at most 1000 buckets apart. Session figures cover the kind and
    resource asked for (default: all) and the sessions whose attributes have the values asked
    for (`attributes.<key>=<value>`), one figure per bucket, or per bucket and value of
    `group_by=attributes.<key>` (sessions without it last, as null); both only by declared
    dimensions, which rollups keep apart. Server figures (traffic, CPU, concurrent users, from
    snapshots) cover the whole tenant. Figures are as of the last rollup run."""

    def __init__(self, rollups: RollupRepository, clock: Clock) -> None:
        self._rollups = rollups
        self._clock = clock

    async def __call__(self, query: ReportUsageQuery) -> list[UsageFigures]:
        calendar = query.settings.calendar
        chosen = usage_filter(
            query.settings, query.where, query.group_by, query.kind, query.resource_id
        )
        size = period(query.bucket)
        window = bounded_window(calendar, size, query.start, query.end, self._clock.now())
        buckets = list(_starting_in(calendar, size, window))
        if not buckets:
            return []
        window = Window(buckets[0].start, buckets[-1].end)
        return await self._rollups.figures(query.tenant_id, size, window, calendar, chosen)


def usage_filter(
    settings: TenantSettings,
    where: Mapping[str, str],
    group_by: str | None,
    kind: str | None = None,
    resource_id: str | None = None,
) -> UsageFilter:
    """The sessions a report covers and the dimension it groups by, from its parameters:
    `attributes.<key>=<value>` and `group_by=attributes.<key>`, declared keys only."""
    values = dict(settings.chosen(where))
    return UsageFilter(kind, resource_id, values, grouped_by(settings, group_by))


def grouped_by(settings: TenantSettings, group_by: str | None) -> str | None:
    """The key of the dimension `group_by=attributes.<key>` names (None: not grouped); a
    declared dimension only, else InvalidInput naming `group_by` and the declared ones."""
    if group_by is None:
        return None
    key = group_by.removeprefix(ATTRIBUTES)
    if key == group_by:
        raise InvalidInput("group_by", "must be attributes.<key> of a declared dimension")
    return settings.dimension("group_by", key)


def bounded_window(
    calendar: Calendar,
    size: Period,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    default_buckets: int | None = None,
) -> Window:
    """The window asked for, defaulted and checked: by default the current bucket and
    `default_buckets` - 1 before it; at most MAX_BUCKETS buckets starting in it."""
    asked = Window.between(start, end)
    last = asked.end or calendar.bucket(size, now).end
    count = default_buckets or DEFAULT_BUCKETS[size]
    first = asked.start or calendar.shift(size, calendar.start_of(size, last), -count)
    if first >= last:
        raise InvalidInput("from", "must be before to")
    window = Window(first, last)
    if len(list(islice(_starting_in(calendar, size, window), MAX_BUCKETS + 1))) > MAX_BUCKETS:
        raise InvalidInput("to", f"at most {MAX_BUCKETS} {size.value}s between from and to")
    return window


def _starting_in(calendar: Calendar, size: Period, window: Window) -> Iterator[Bucket]:
    assert window.start is not None and window.end is not None
    return (b for b in calendar.buckets(size, window.start, window.end) if b.start >= window.start)
