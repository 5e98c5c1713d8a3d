"""List the errors devices reported."""

from dataclasses import dataclass, field
from datetime import datetime

from application.pagination import Page, check_limit, page_of, position_of
from application.telemetry.ports import ErrorLog
from application.telemetry.window import report_window
from domain.error_reports import ErrorFilter, ErrorReport


@dataclass(frozen=True)
class ListErrorsQuery:
    tenant_id: str
    where: ErrorFilter = field(default_factory=ErrorFilter)
    start: datetime | None = None
    end: datetime | None = None
    limit: int | None = None
    cursor: str | None = None


class ListErrors:
    """A tenant's errors, newest first, one page at a time (50 unless told, at most 500),
    filtered by fingerprint, device, app version, severity and when they happened (`from`
    inclusive, `to` exclusive, `from` before `to`)."""

    def __init__(self, errors: ErrorLog) -> None:
        self._errors = errors

    async def __call__(self, query: ListErrorsQuery) -> Page[ErrorReport]:
        size = check_limit(query.limit)
        after = position_of(query.cursor)
        window = report_window(query.start, query.end)
        rows = await self._errors.find(query.tenant_id, query.where, window, size + 1, after)
        return page_of(rows, size, lambda e: [e.at.isoformat(), e.id])
