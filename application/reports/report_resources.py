"""Per resource: sessions, unique subjects, durations, who is there now, and the peak."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from application.ports import Window
from application.reports.ports import Reports
from application.reports.report_usage import grouped_by
from domain.reports import ResourceActivity, in_group_order
from domain.tenants import TenantSettings


@dataclass(frozen=True)
class ReportResourcesQuery:
    tenant_id: str
    kind: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    settings: TenantSettings = field(default_factory=TenantSettings)  # the declared dimensions
    where: Mapping[str, str] = field(default_factory=dict)  # attributes.<key>=<value>
    group_by: str | None = None  # attributes.<key>


class ReportResources:
    """Per resource with sessions started in the window asked for (`from` inclusive, `to`
    exclusive, either open; both with an offset), of one kind or of all, ordered by resource id:
    how many sessions started (active ones too) and from how many unique subjects; how many
    unique visitors (those subjects plus the distinct client keys of anonymous sessions, one per
    browser or device); how many of them ended (are no longer active, whatever the status) and
    their average duration; how many are active now, and the peak (the most active at once).
    `attributes.<key>=<value>` (declared dimensions only) keeps the sessions with those values:
    one agency's or client's webinars. `group_by=attributes.<key>` (a declared dimension only)
    gives one item per value of it instead of one per resource, ordered by value, the sessions
    without it last (`group` null), `resource_id` null: the same figures over the group's
    sessions whatever their resource, a subject or browser on two of its resources counted
    once, the peak the most of its sessions active at once. Ungrouped, `group` is null."""

    def __init__(self, reports: Reports) -> None:
        self._reports = reports

    async def __call__(self, query: ReportResourcesQuery) -> list[ResourceActivity]:
        window = Window.between(query.start, query.end)
        where = query.settings.chosen(query.where)
        group_by = grouped_by(query.settings, query.group_by)
        found = await self._reports.resources(query.tenant_id, query.kind, window, where, group_by)
        return found if group_by is None else in_group_order(found)
