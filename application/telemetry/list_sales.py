"""List the sales kiosks recorded."""

from dataclasses import dataclass, field
from datetime import datetime

from application.pagination import Page, check_limit, page_of, position_of
from application.telemetry.ports import SaleBook
from application.telemetry.window import report_window
from domain.sales import Sale, SalesFilter


@dataclass(frozen=True)
class ListSalesQuery:
    tenant_id: str
    where: SalesFilter = field(default_factory=SalesFilter)
    start: datetime | None = None
    end: datetime | None = None
    limit: int | None = None
    cursor: str | None = None


class ListSales:
    """A tenant's sales (refunds among them), newest first, one page at a time (50 unless told,
    at most 500), filtered by session, device, settlement state and when they occurred (`from`
    inclusive, `to` exclusive, `from` before `to`)."""

    def __init__(self, sales: SaleBook) -> None:
        self._sales = sales

    async def __call__(self, query: ListSalesQuery) -> Page[Sale]:
        size = check_limit(query.limit)
        after = position_of(query.cursor)
        window = report_window(query.start, query.end)
        rows = await self._sales.find(query.tenant_id, query.where, window, size + 1, after)
        return page_of(rows, size, lambda s: [s.occurred_at.isoformat(), s.id])
