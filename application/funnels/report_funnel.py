"""Report how far the sessions of a funnel's kind got through its stages."""

from dataclasses import dataclass, field
from datetime import datetime

from application.funnels.ports import FunnelEvents, FunnelRepository
from application.ports import Clock, Window
from domain.calendar import Calendar
from domain.errors import NotFound
from domain.funnels import FunnelFigures, FunnelTally

DEFAULT_DAYS = 30


@dataclass(frozen=True)
class ReportFunnelQuery:
    tenant_id: str
    name: str
    start: datetime | None = None
    end: datetime | None = None
    calendar: Calendar = field(default_factory=Calendar)  # the tenant's


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
    An unknown funnel is not found."""

    def __init__(self, funnels: FunnelRepository, events: FunnelEvents, clock: Clock) -> None:
        self._funnels = funnels
        self._events = events
        self._clock = clock

    async def __call__(self, query: ReportFunnelQuery) -> FunnelFigures:
        # A bad window is wrong for any funnel: judged first.
        window = Window.of_days(
            query.start, query.end, self._clock.now(), query.calendar, DEFAULT_DAYS
        )
        funnel = await self._funnels.get(query.tenant_id, query.name)
        if funnel is None:
            raise NotFound(f"no funnel {query.name}")
        tally = FunnelTally(funnel)
        trails = self._events.trails(query.tenant_id, funnel.kind, window, funnel.types)
        async for trail in trails:
            tally.add(trail)
        statuses = await self._events.statuses(query.tenant_id, funnel.kind, window)
        return tally.figures(statuses)
