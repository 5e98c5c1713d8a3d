"""Report how fast devices do things, by app version or device."""

from dataclasses import dataclass
from datetime import datetime

from application.telemetry.ports import MetricLog
from application.telemetry.window import report_window
from domain.errors import InvalidInput
from domain.performance import GroupBy, PerformanceRow


@dataclass(frozen=True)
class ReportPerformanceQuery:
    tenant_id: str
    type: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    group_by: str = GroupBy.APP_VERSION


@dataclass(frozen=True)
class PerformanceReport:
    items: list[PerformanceRow]


class ReportPerformance:
    """Metrics that started in the window (of one type, if asked), per type and app version (or
    device, `group_by=device_id`): how many, the share that succeeded, and the exact
    nearest-rank p50, p95 and p99 and the maximum of their durations, with p50 and p95 of each
    breakdown step — so a slow capture on a new version shows as a group of its own.
    Percentiles are computed by the store (domain.performance.rank says which value each is)."""

    def __init__(self, metrics: MetricLog) -> None:
        self._metrics = metrics

    async def __call__(self, query: ReportPerformanceQuery) -> PerformanceReport:
        try:
            group_by = GroupBy(query.group_by)
        except ValueError:
            raise InvalidInput("group_by", "must be app_version or device_id") from None
        window = report_window(query.start, query.end)
        rows = await self._metrics.report(query.tenant_id, query.type, window, group_by)
        return PerformanceReport(rows)
