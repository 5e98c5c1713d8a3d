"""Per resource: sessions, unique subjects, durations, who is there now, and the peak."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from application.ports import Window
from application.reports.ports import Reports
from domain.reports import ResourceActivity
from domain.tenants import TenantSettings


@dataclass(frozen=True)
class ReportResourcesQuery:
    tenant_id: str
    kind: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    settings: TenantSettings = field(default_factory=TenantSettings)  # the declared dimensions
    where: Mapping[str, str] = field(default_factory=dict)  # attributes.<key>=<value>


class ReportResources:
    """Per resource with sessions started in the window asked for (`from` inclusive, `to`
    exclusive, either open; both with an offset), of one kind or of all, ordered by resource id:
    how many sessions started (active ones too) and from how many unique subjects; how many
    unique visitors (those subjects plus the distinct client keys of anonymous sessions, one per
    browser or device); how many of them ended (are no longer active, whatever the status) and
    their average duration; how many are active now, and the peak (the most active at once).
    `attributes.<key>=<value>` (declared dimensions only) keeps the sessions with those values:
    one agency's or client's webinars."""

    def __init__(self, reports: Reports) -> None:
        self._reports = reports

    async def __call__(self, query: ReportResourcesQuery) -> list[ResourceActivity]:
        window = Window.between(query.start, query.end)
        where = query.settings.chosen(query.where)
        return await self._reports.resources(query.tenant_id, query.kind, window, where)
