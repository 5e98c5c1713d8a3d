"""One subject's totals: sessions, time, events, meters, credits consumed."""

from datetime import datetime

from application.ports import Window
from application.reports.ports import Reports
from domain.reports import UsageStats


class ReportUsageStats:
    def __init__(self, reports: Reports) -> None:
        self._reports = reports

    async def __call__(
        self,
        tenant_id: str,
        subject_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> UsageStats:
        return await self._reports.usage_stats(tenant_id, subject_id, Window.between(start, end))
