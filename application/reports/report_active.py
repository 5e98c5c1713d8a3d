"""How many sessions are active now."""

from dataclasses import dataclass

from application.reports.ports import Reports


@dataclass(frozen=True)
class ReportActiveQuery:
    tenant_id: str
    resource_id: str | None = None


@dataclass(frozen=True)
class ActiveSessions:
    active: int  # sessions active now, of the resource asked for or of all


class ReportActive:
    """How many sessions are active now: of one resource, or of all the tenant's."""

    def __init__(self, reports: Reports) -> None:
        self._reports = reports

    async def __call__(self, query: ReportActiveQuery) -> ActiveSessions:
        return ActiveSessions(await self._reports.active(query.tenant_id, query.resource_id))
