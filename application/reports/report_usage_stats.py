"""One subject's totals."""

from dataclasses import dataclass
from datetime import datetime

from application.ports import Window
from application.reports.ports import Reports
from domain.reports import UsageStats


@dataclass(frozen=True)
class ReportUsageStatsQuery:
    tenant_id: str
    subject_id: str
    start: datetime | None = None
    end: datetime | None = None


class ReportUsageStats:
    """One subject's totals over its sessions started in the window asked for (`from`
    inclusive, `to` exclusive, either open; both with an offset): sessions, time (of those
    that ended), events, meters and credits consumed."""

    def __init__(self, reports: Reports) -> None:
        self._reports = reports

    async def __call__(self, query: ReportUsageStatsQuery) -> UsageStats:
        window = Window.between(query.start, query.end)
        return await self._reports.usage_stats(query.tenant_id, query.subject_id, window)
