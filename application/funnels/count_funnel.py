"""How far a funnel's sessions got over a window: the days rolled up for good read from the
rollups, the rest (today, days still open, parts of days, days never rolled up) from the events.
Both count alike, so where the line falls never changes a figure."""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from application.funnels.ports import FunnelDays, FunnelEvents, FunnelScope
from application.ports import Window
from domain.calendar import Calendar, Period
from domain.funnels import Funnel, FunnelFigures, FunnelGroup, FunnelTally
from domain.reports import group_order
from domain.tenants import TenantSettings


@dataclass
class FunnelCount:
    """A funnel's tally of some sessions as a whole, and per group when the scope groups."""

    funnel: Funnel
    whole: FunnelTally
    groups: dict[str | None, FunnelTally] = field(default_factory=dict)

    @classmethod
    def of(cls, funnel: Funnel) -> "FunnelCount":
        return cls(funnel, FunnelTally.of(funnel))

    def group(self, group: str | None) -> FunnelTally:
        return self.groups.setdefault(group, FunnelTally.of(self.funnel))

    def figures(self, grouped: bool) -> FunnelFigures:
        """The report; with `grouped`, per group too (sessions without the value last)."""
        figures = self.whole.figures(self.funnel)
        if not grouped:
            return figures
        ordered = sorted(self.groups, key=group_order)
        groups = [FunnelGroup(g, self.groups[g].figures(self.funnel)) for g in ordered]
        return replace(figures, groups=groups)


async def count_funnel(
    events: FunnelEvents,
    days: FunnelDays,
    tenant_id: str,
    funnel: Funnel,
    window: Window,
    settings: TenantSettings,
    scope: FunnelScope,
) -> FunnelCount:
    """The funnel over its kind's sessions started in the window and in the scope (reports'
    windows are bounded: Window.of_days), the tenant's days as its settings say."""
    assert window.start is not None and window.end is not None
    calendar, count = settings.calendar, FunnelCount.of(funnel)
    inside = [
        d
        for d in calendar.buckets(Period.DAY, window.start, window.end)
        if window.start <= d.start and d.end <= window.end
    ]
    fingerprint = funnel.fingerprint(settings.dimensions)
    stored = await days.stored(tenant_id, funnel.name, fingerprint, inside)
    rolled_up = [d.start for d in inside if stored.get(d.start)]
    if rolled_up:
        await _add_rolled_up(count, days, tenant_id, rolled_up, scope)
    for part in _rest(window, rolled_up, calendar):
        await add_events(count, events, tenant_id, part, scope)
    return count


async def add_events(
    count: FunnelCount, events: FunnelEvents, tenant_id: str, window: Window, scope: FunnelScope
) -> None:
    """Count the sessions started in the window from their events."""
    funnel = count.funnel
    async for trail in events.trails(tenant_id, funnel.kind, window, funnel.types, scope):
        count.whole.add(funnel, trail)
        if scope.grouped:
            count.group(trail.group).add(funnel, trail)
    for group, statuses in (await events.statuses(tenant_id, funnel.kind, window, scope)).items():
        count.whole.count(statuses)
        if scope.grouped:
            count.group(group).count(statuses)


async def _add_rolled_up(
    count: FunnelCount,
    days: FunnelDays,
    tenant_id: str,
    starts: list[datetime],
    scope: FunnelScope,
) -> None:
    name = count.funnel.name
    if not scope.where and scope.by_row is None:  # read as added up per day and group
        for tally in await days.wholes(tenant_id, name, starts):
            count.whole += tally
        if scope.grouping is not None:
            for group, tally in await days.groups(tenant_id, name, starts, scope.grouping):
                mine = count.group(group)
                mine += tally
        return
    for row in await days.rows(tenant_id, name, starts, scope.where):
        if scope.matches(row.dimensions):
            count.whole += row.tally
            if scope.grouped:
                tally = count.group(scope.group_of(row.resource_id, row.dimensions))
                tally += row.tally


def _rest(window: Window, rolled_up: Iterable[datetime], calendar: Calendar) -> list[Window]:
    """The parts of the window outside the days rolled up, each as one window."""
    assert window.start is not None and window.end is not None
    parts, start = [], window.start
    for day in rolled_up:
        if start < day:
            parts.append(Window(start, day))
        start = calendar.shift(Period.DAY, day, 1)
    if start < window.end:
        parts.append(Window(start, window.end))
    return parts
