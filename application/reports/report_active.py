"""How many sessions are active now (of one resource, or of all)."""

from application.reports.ports import Reports


class ReportActive:
    def __init__(self, reports: Reports) -> None:
        self._reports = reports

    async def __call__(self, tenant_id: str, resource_id: str | None = None) -> int:
        return await self._reports.active(tenant_id, resource_id)
