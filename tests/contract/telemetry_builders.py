"""Builders of kiosk telemetry for the contract suite: errors, metrics and sales around T0."""

from decimal import Decimal
from typing import Any

from application.telemetry.record_sales import RecordSalesCommand
from application.telemetry.recorded import Recorded
from domain.error_reports import Breadcrumb, ErrorReport, Impact, Loss, Severity
from domain.errors import InvalidInput
from domain.performance import Metric
from domain.sales import Amounts, PaymentMethod, Sale, SaleItem, SaleStatus
from domain.tenants import Tenant
from tests.contract.builders import at, wired
from tests.fakes import FakeClock

# A day after T0: every record of the telemetry tests happened before it.
CLOCK = FakeClock(at(60 * 24))


def an_error(id: str, minutes: float = 0, **fields: Any) -> ErrorReport:
    defaults: dict[str, Any] = {
        "at": at(minutes),
        "device_id": "kiosk-1",
        "app_version": "1.4.2",
        "severity": Severity.ERROR,
        "type": "PrinterError",
        "message": "paper jam",
    }
    return ErrorReport(id=id, **{**defaults, **fields})


def a_full_error(id: str, session_id: str | None) -> ErrorReport:
    """An error with every optional field set, to see that each comes back as sent."""
    return an_error(
        id,
        3,
        session_id=session_id,
        build="2026.11.3",
        severity=Severity.FATAL,
        code="PRN_JAM",
        message="paper jam in tray 2 — 용지 걸림",
        stack_trace='File "printer.py", line 120, in print_photo\nPrinterError: jam',
        breadcrumbs=(
            Breadcrumb(at(2), "tap", "print", {"copies": 2}),
            Breadcrumb(at(2.5), "printer", None, None),
        ),
        context={"screen": "print", "nested": {"list": [1, 2.5, None, True]}},
        device_state={"paper": 0.25, "temperature_c": 41},
        impact=Impact(
            session_interrupted=True,
            sale_lost=True,
            estimated_loss=Loss(Decimal("15000.000000001"), "KRW"),
            user_retried=True,
            recovered=False,
        ),
    )


def loss(amount: str, currency: str = "KRW") -> Impact:
    return Impact(sale_lost=True, estimated_loss=Loss(Decimal(amount), currency))


def a_metric(id: str, ms: float, minutes: float = 0, **fields: Any) -> Metric:
    defaults: dict[str, Any] = {
        "device_id": "kiosk-1",
        "app_version": "1.4.2",
        "type": "capture",
        "started_at": at(minutes),
        "success": True,
    }
    return Metric(id=id, duration_ms=ms, **{**defaults, **fields})


def a_sale(id: str, session_id: str, minutes: float = 0, **fields: Any) -> Sale:
    defaults: dict[str, Any] = {
        "device_id": "kiosk-1",
        "occurred_at": at(minutes),
        "currency": "KRW",
        "amounts": amounts("20000"),
        "payment_method": PaymentMethod.CARD,
    }
    return Sale(id=id, session_id=session_id, **{**defaults, **fields})


def amounts(gross: str, discount: str = "0", tax: str = "0", net: str | None = None) -> Amounts:
    net_amount = Decimal(net) if net is not None else Decimal(gross) - Decimal(discount)
    return Amounts(Decimal(gross), Decimal(discount), Decimal(tax), net_amount)


def a_refund(id: str, of: Sale, net: str, minutes: float = 10) -> Sale:
    return a_sale(
        id,
        of.session_id,
        minutes,
        device_id=of.device_id,
        currency=of.currency,
        amounts=amounts(net),
        payment_method=of.payment_method,
        status=SaleStatus.REFUNDED,
        refund_of=of.id,
    )


def an_item(sku: str, quantity: int, unit_price: str) -> SaleItem:
    return SaleItem(sku, quantity, Decimal(unit_price))


async def record_sales(storage: Any, tenant: Tenant, *sales: Sale) -> Recorded[Sale]:
    """The sales recorded in one batch, through the use case, at CLOCK's time."""
    use_case = wired(storage, CLOCK).use_cases().record_sales()
    return await use_case(RecordSalesCommand(tenant.id, list(sales)))


def refused_on(recorded: Recorded[Sale]) -> list[str | None]:
    """Per item: the field an InvalidInput names, "conflict", or None when it was taken."""
    return [
        None
        if item.refused is None
        else item.refused.field
        if isinstance(item.refused, InvalidInput)
        else "conflict"
        for item in recorded.items
    ]
