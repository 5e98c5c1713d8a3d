"""Admins read usage by hour or day from the rollups."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from application.ports import Clock, Window
from application.rollups.ports import RollupRepository
from domain.errors import InvalidInput
from domain.rollups import Period, UsageFigures, period, usage_figures

MAX_BUCKETS = 1000
DEFAULT_SPAN = {Period.HOUR: timedelta(hours=24), Period.DAY: timedelta(days=30)}


@dataclass(frozen=True)
class ReportUsageQuery:
    tenant_id: str
    bucket: str
    start: datetime | None = None
    end: datetime | None = None
    kind: str | None = None
    resource_id: str | None = None


class ReportUsage:
    """Usage by hour or day, read from the rollups (fast however much raw data there is): the
    buckets rolled up that start in the window asked for (`from` inclusive, `to` exclusive),
    oldest first. By default the window is the last 24 hours for hours and the last 30 days for
    days; `from` must be before `to`, at most 1000 buckets apart. Session figures cover the kind
    and resource asked for (default: all); server figures (traffic, CPU, concurrent users, from
    snapshots) cover the whole tenant. Figures are as of the last rollup run."""

    def __init__(self, rollups: RollupRepository, clock: Clock) -> None:
        self._rollups = rollups
        self._clock = clock

    async def __call__(self, query: ReportUsageQuery) -> list[UsageFigures]:
        kind, resource_id = query.kind, query.resource_id
        size = period(query.bucket)
        window = bounded_window(size, query.start, query.end, self._clock.now())
        found = await self._rollups.find(query.tenant_id, size, window, kind, resource_id)
        return [usage_figures(rollup, kind, resource_id) for rollup in found]


def bounded_window(
    size: Period,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    default_span: timedelta | None = None,
) -> Window:
    """The window asked for, defaulted and checked: at most MAX_BUCKETS buckets."""
    asked = Window.between(start, end)
    last = asked.end or size.start_of(now) + size.length
    first = asked.start or last - (default_span or DEFAULT_SPAN[size])
    if first >= last:
        raise InvalidInput("from", "must be before to")
    if (last - first) / size.length > MAX_BUCKETS:
        raise InvalidInput("to", f"at most {MAX_BUCKETS} {size.value}s between from and to")
    return Window(first, last)
