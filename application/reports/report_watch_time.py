"""Watch time per viewer of one resource."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from application.ports import Window
from application.reports.ports import Reports
from application.reports.report_usage import grouped_by
from domain.reports import WatchTime, in_group_order
from domain.tenants import TenantSettings
from domain.text import check_text


@dataclass(frozen=True)
class ReportWatchTimeQuery:
    tenant_id: str
    resource_id: str
    start: datetime | None = None
    end: datetime | None = None
    settings: TenantSettings = field(default_factory=TenantSettings)  # the declared dimensions
    where: Mapping[str, str] = field(default_factory=dict)  # attributes.<key>=<value>
    group_by: str | None = None  # attributes.<key>


class ReportWatchTime:
    """Watch time per viewer of one resource, over the viewers' sessions that ended and started
    in the window asked for (`from` inclusive, `to` exclusive, either open; both with an
    offset); anonymous sessions are left out. Per viewer: visits, total and average seconds, and
    the time actually watched, where overlapping sessions (two tabs) count once
    (`domain.reports.unique_seconds`: the length of the union of the visits).
    `attributes.<key>=<value>` (declared dimensions only) keeps the sessions with those values:
    one client's viewers. `group_by=attributes.<key>` (a declared dimension only) gives one item
    per value of it among those sessions instead of one per viewer, ordered by value, the
    sessions without it last (`group` null), `subject_id` null: the group's visits, total
    seconds, their average (total / visits), and the time watched summed over its viewers, each
    viewer's the union of their visits in the group. Ungrouped, `group` is null."""

    def __init__(self, reports: Reports) -> None:
        self._reports = reports

    async def __call__(self, query: ReportWatchTimeQuery) -> list[WatchTime]:
        check_text("resource_id", query.resource_id, 200)
        window = Window.between(query.start, query.end)
        where = query.settings.chosen(query.where)
        group_by = grouped_by(query.settings, query.group_by)
        found = await self._reports.watch_time(
            query.tenant_id, query.resource_id, window, where, group_by
        )
        return found if group_by is None else in_group_order(found)
