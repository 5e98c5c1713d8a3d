"""Admins read usage by hour or day from the rollups (fast however much raw data there is)."""

from datetime import datetime, timedelta

from application.ports import Clock, Window
from application.rollups.ports import RollupRepository
from domain.errors import InvalidInput
from domain.rollups import Period, UsageFigures, period, usage_figures

MAX_BUCKETS = 1000
DEFAULT_SPAN = {Period.HOUR: timedelta(hours=24), Period.DAY: timedelta(days=30)}


class ReportUsage:
    def __init__(self, rollups: RollupRepository, clock: Clock) -> None:
        self._rollups = rollups
        self._clock = clock

    async def __call__(
        self,
        tenant_id: str,
        bucket: str,
        start: datetime | None = None,
        end: datetime | None = None,
        kind: str | None = None,
        resource_id: str | None = None,
    ) -> list[UsageFigures]:
        """The buckets rolled up that start in [start, end) (default: the last day of hours,
        or the last 30 days), oldest first."""
        size = period(bucket)
        window = bounded_window(size, start, end, self._clock.now())
        found = await self._rollups.find(tenant_id, size, window, kind, resource_id)
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
