"""Per resource: sessions, unique subjects, durations, who is there now, and the peak."""

from datetime import datetime

from application.ports import Window
from application.reports.ports import Reports
from domain.reports import ResourceActivity


class ReportResources:
    def __init__(self, reports: Reports) -> None:
        self._reports = reports

    async def __call__(
        self,
        tenant_id: str,
        kind: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[ResourceActivity]:
        return await self._reports.resources(tenant_id, kind, Window.between(start, end))
