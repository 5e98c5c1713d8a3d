"""Report the faults devices hit, grouped."""

from dataclasses import dataclass, field
from datetime import datetime

from application.telemetry.ports import ErrorLog
from application.telemetry.window import report_window
from domain.calendar import Calendar
from domain.error_reports import ErrorFilter, ErrorGroup, ErrorGrouping


@dataclass(frozen=True)
class ReportErrorsQuery:
    tenant_id: str
    start: datetime | None = None
    end: datetime | None = None
    app_version: str | None = None
    device_id: str | None = None
    group_by: str | None = None  # "day", or None: per fingerprint over the whole window
    calendar: Calendar = field(default_factory=Calendar)  # the tenant's


@dataclass(frozen=True)
class ErrorsReport:
    items: list[ErrorGroup]


class ReportErrors:
    """The errors of a window (of one app version or device, if asked) grouped by fingerprint —
    one fault, however many devices, builds and sessions it hit — most frequent first: how often,
    on how many devices and sessions, first and last seen, per app version, the worst severity,
    the sales it lost and the estimated loss per currency (exact, currencies never added
    together). Type, code and sample message are its latest error's. `day` is null.

    `group_by=day` (its only value) gives a fault a row per calendar day of the tenant's time
    zone it was seen on, from local midnight to local midnight whatever the clocks do (a day
    can be 23 or 25 hours long): `day` is that day (YYYY-MM-DD), and every figure, type, code
    and sample message is what the report says of that day's part of the window alone. Oldest
    day first, then most frequent first within a day. Any other `group_by` is refused (422).
    Counted by the store."""

    def __init__(self, errors: ErrorLog) -> None:
        self._errors = errors

    async def __call__(self, query: ReportErrorsQuery) -> ErrorsReport:
        grouping = ErrorGrouping.parse(query.group_by, query.calendar.time_zone)
        window = report_window(query.start, query.end)
        where = ErrorFilter(device_id=query.device_id, app_version=query.app_version)
        return ErrorsReport(await self._errors.report(query.tenant_id, where, window, grouping))
