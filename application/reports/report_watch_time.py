"""Watch time per viewer of one resource: visits, total, average, and time actually watched."""

from datetime import datetime

from application.ports import Window
from application.reports.ports import Reports
from domain.reports import WatchTime
from domain.text import check_text


class ReportWatchTime:
    def __init__(self, reports: Reports) -> None:
        self._reports = reports

    async def __call__(
        self,
        tenant_id: str,
        resource_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[WatchTime]:
        check_text("resource_id", resource_id, 200)
        return await self._reports.watch_time(tenant_id, resource_id, Window.between(start, end))
