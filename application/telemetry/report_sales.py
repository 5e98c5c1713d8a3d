"""Report sales per device, day or attribute, per currency."""

from dataclasses import dataclass, field
from datetime import datetime

from application.telemetry.ports import SaleBook
from application.telemetry.window import report_window
from domain.calendar import Calendar
from domain.money import check_currency
from domain.sales import SalesGrouping, SalesTotal, sales_totals


@dataclass(frozen=True)
class ReportSalesQuery:
    tenant_id: str
    start: datetime | None = None
    end: datetime | None = None
    group_by: str = "device_id"
    currency: str | None = None
    calendar: Calendar = field(default_factory=Calendar)  # the tenant's


@dataclass(frozen=True)
class SalesReport:
    items: list[SalesTotal]


class ReportSales:
    """Sales that occurred in the window, per group (device, calendar day of the tenant's
    time zone, or the value of an attribute: `attributes.store`) and currency — amounts of two currencies are never added
    together. Completed sales make the count, gross, discount, tax and net, and their net per
    payment method and per settlement state; refunds are summed apart (`refunded`); failed sales
    move no money. Amounts are exact decimals, summed by the store; domain.sales.sales_totals
    folds them."""

    def __init__(self, sales: SaleBook) -> None:
        self._sales = sales

    async def __call__(self, query: ReportSalesQuery) -> SalesReport:
        grouping = SalesGrouping.parse(query.group_by, query.calendar.time_zone)
        if query.currency is not None:
            check_currency("currency", query.currency)
        window = report_window(query.start, query.end)
        figures = await self._sales.report(query.tenant_id, window, grouping, query.currency)
        return SalesReport(sales_totals(figures))
