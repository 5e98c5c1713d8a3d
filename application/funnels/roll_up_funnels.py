"""Roll a tenant's funnels up by day, so that a month's funnel report reads thirty rows."""

from collections.abc import Sequence
from datetime import datetime

from application.funnels.count_funnel import FunnelCount, add_events
from application.funnels.ports import (
    FunnelDay,
    FunnelDays,
    FunnelEvents,
    FunnelRepository,
    FunnelRow,
    FunnelScope,
    row_of_group,
)
from application.ports import Window
from domain.calendar import Bucket
from domain.funnels import Funnel
from domain.tenants import Tenant


class RollUpFunnels:
    """Each of a tenant's funnels is tallied over the sessions started in a day of the tenant's
    calendar, as a whole and per resource and values of every declared dimension (the rows a
    report filters and groups), and kept with the fingerprint of what it counted (the funnel's
    definition and the dimensions). The usage rollup (RollUpUsage) asks for the days it
    recomputes and for any day whose events are all kept that is not stored final with the
    current fingerprint: a funnel defined or changed, or dimensions declared, fill in on the
    next run. A day is final when no session started in it may still change (RollUpUsage says:
    the day ends before where its next run resumes)."""

    def __init__(self, funnels: FunnelRepository, events: FunnelEvents, days: FunnelDays) -> None:
        self._funnels = funnels
        self._events = events
        self._days = days

    async def due(
        self, tenant: Tenant, days: Sequence[Bucket], recomputed: Sequence[datetime]
    ) -> list[tuple[Funnel, Bucket]]:
        """Of `days`, those to roll up for each funnel: the `recomputed` ones, and those not
        stored final with the funnel's current fingerprint."""
        due = []
        dimensions = tenant.settings.dimensions
        for funnel in await self._funnels.all(tenant.id):
            fingerprint = funnel.fingerprint(dimensions)
            stored = await self._days.stored(tenant.id, funnel.name, fingerprint, days)
            due += [(funnel, d) for d in days if d.start in recomputed or not stored.get(d.start)]
        return due

    async def roll_up(self, tenant: Tenant, funnel: Funnel, day: Bucket, final: bool) -> None:
        dimensions = tenant.settings.dimensions
        scope = FunnelScope(by_row=tuple(dimensions))
        count = FunnelCount.of(funnel)
        await add_events(count, self._events, tenant.id, Window(day.start, day.end), scope)
        rows = []
        for group, tally in count.groups.items():
            assert group is not None  # by_row gives every session a row
            resource_id, values = row_of_group(group)
            rows.append(FunnelRow(resource_id, values, tally))
        fingerprint = funnel.fingerprint(dimensions)
        stored = FunnelDay(
            day.start, fingerprint, final, count.whole, rows, tuple(dimensions), day.end
        )
        await self._days.replace(tenant.id, funnel.name, stored)
