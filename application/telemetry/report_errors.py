"""Report the faults devices hit, grouped."""

from dataclasses import dataclass
from datetime import datetime

from application.telemetry.ports import ErrorLog
from application.telemetry.window import report_window
from domain.error_reports import ErrorFilter, ErrorGroup


@dataclass(frozen=True)
class ReportErrorsQuery:
    tenant_id: str
    start: datetime | None = None
    end: datetime | None = None
    app_version: str | None = None
    device_id: str | None = None


@dataclass(frozen=True)
class ErrorsReport:
    items: list[ErrorGroup]


class ReportErrors:
    """The errors of a window (of one app version or device, if asked) grouped by fingerprint —
    one fault, however many devices, builds and sessions it hit — most frequent first: how often,
    on how many devices and sessions, first and last seen, per app version, the worst severity,
    the sales it lost and the estimated loss per currency (exact, currencies never added
    together). Type, code and sample message are its latest error's. Counted by the store."""

    def __init__(self, errors: ErrorLog) -> None:
        self._errors = errors

    async def __call__(self, query: ReportErrorsQuery) -> ErrorsReport:
        window = report_window(query.start, query.end)
        where = ErrorFilter(device_id=query.device_id, app_version=query.app_version)
        return ErrorsReport(await self._errors.report(query.tenant_id, where, window))
