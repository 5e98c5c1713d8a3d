"""Errors, metrics and sales to rows and back, each exactly as it was sent: amounts as whole and
nano-units, instants inside JSON documents as ISO text, unit prices as decimal strings."""

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func

from adapters.sqlalchemy.quantities import NANOS
from domain.error_reports import Breadcrumb, ErrorReport, Impact, Loss, Severity
from domain.money import EXACT, canonical
from domain.performance import Metric
from domain.sales import (
    Amounts,
    PaymentMethod,
    Sale,
    SaleItem,
    SaleStatus,
    Settlement,
    SettlementState,
    attribute_text,
)

AMOUNTS = ("gross", "discount", "tax", "net")
IMPACT_FLAGS = ("session_interrupted", "user_retried", "recovered")  # sale_lost is a column


def amount_columns(name: str, amount: Decimal | None) -> dict[str, int | None]:
    if amount is None:
        return {f"{name}_units": None, f"{name}_nanos": None}
    units = int(amount)
    return {f"{name}_units": units, f"{name}_nanos": int((amount - units).scaleb(9))}


def amount_of(units: int | Decimal, nanos: int | Decimal) -> Decimal:
    """An amount, or a sum of amounts, from its whole units and nano-units (PostgreSQL sums
    BIGINTs into NUMERIC, SQLite into integers)."""
    return canonical(Decimal(int(units) * NANOS + int(nanos)).scaleb(-9, EXACT))


def amount_sums(rows: Any, name: str) -> list[ColumnElement[Any]]:
    """The sums of an amount's columns, for `summed`: its whole units split at 10^9, as a sum of
    the column itself may pass SQLite's 64-bit integers (10^4 amounts near the limit do)."""
    units = rows[f"{name}_units"]
    return [func.sum(units // NANOS), func.sum(units % NANOS), func.sum(rows[f"{name}_nanos"])]


def summed(sums: Sequence[int | Decimal]) -> list[Decimal]:
    """The sums of amounts, from the columns of `amount_sums` of each, in order."""
    return [
        amount_of(int(sums[i]) * NANOS + int(sums[i + 1]), sums[i + 2])
        for i in range(0, len(sums), 3)
    ]


def error_row(tenant_id: str, error: ErrorReport) -> dict[str, Any]:
    impact, loss = error.impact, error.loss
    return {
        "tenant_id": tenant_id,
        "id": error.id,
        "at": error.at,
        "device_id": error.device_id,
        "session_id": error.session_id,
        "app_version": error.app_version,
        "severity": error.severity.value,
        "type": error.type,
        "code": error.code,
        "message": error.message,
        "fingerprint": error.fingerprint,
        "sale_lost": error.sale_lost,
        "loss_currency": None if loss is None else loss.currency,
        **amount_columns("loss", None if loss is None else loss.amount),
        "document": {
            "build": error.build,
            "stack_trace": error.stack_trace,
            "breadcrumbs": [
                {"at": c.at.isoformat(), "type": c.type, "label": c.label, "data": c.data}
                for c in error.breadcrumbs
            ],
            "context": error.context,
            "device_state": error.device_state,
            "impact": None if impact is None else {f: getattr(impact, f) for f in IMPACT_FLAGS},
        },
    }


def error_of(row: Any) -> ErrorReport:
    document = row.document
    impact = None
    if (flags := document["impact"]) is not None:
        loss = None
        if row.loss_currency is not None:
            loss = Loss(amount_of(row.loss_units, row.loss_nanos), row.loss_currency)
        impact = Impact(sale_lost=row.sale_lost, estimated_loss=loss, **flags)
    return ErrorReport(
        id=row.id,
        at=row.at,
        device_id=row.device_id,
        app_version=row.app_version,
        severity=Severity(row.severity),
        type=row.type,
        message=row.message,
        session_id=row.session_id,
        build=document["build"],
        code=row.code,
        stack_trace=document["stack_trace"],
        fingerprint=row.fingerprint,
        breadcrumbs=tuple(
            Breadcrumb(datetime.fromisoformat(c["at"]), c["type"], c["label"], c["data"])
            for c in document["breadcrumbs"]
        ),
        context=document["context"],
        device_state=document["device_state"],
        impact=impact,
    )


def metric_row(tenant_id: str, metric: Metric) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "id": metric.id,
        "device_id": metric.device_id,
        "app_version": metric.app_version,
        "type": metric.type,
        "started_at": metric.started_at,
        "duration_ms": metric.duration_ms,
        "success": metric.success,
        # The breakdown is kept here too, so that a metric reads back from its row alone.
        "document": {
            "session_id": metric.session_id,
            "error_code": metric.error_code,
            "breakdown": metric.breakdown,
            "context": metric.context,
        },
    }


def step_rows(tenant_id: str, metric: Metric) -> list[dict[str, Any]]:
    return [
        {"tenant_id": tenant_id, "metric_id": metric.id, "step": step, "duration_ms": ms}
        for step, ms in metric.breakdown.items()
    ]


def metric_of(row: Any) -> Metric:
    return Metric(
        id=row.id,
        device_id=row.device_id,
        app_version=row.app_version,
        type=row.type,
        started_at=row.started_at,
        duration_ms=row.duration_ms,
        success=row.success,
        **row.document,
    )


def settlement_columns(settlement: Settlement) -> dict[str, Any]:
    return {
        "settlement_state": settlement.state.value,
        "settlement_date": settlement.scheduled_date,
        "processed_at": settlement.processed_at,
        "batch_id": settlement.batch_id,
    }


def sale_row(tenant_id: str, sale: Sale) -> dict[str, Any]:
    row = {
        "tenant_id": tenant_id,
        "id": sale.id,
        "session_id": sale.session_id,
        "device_id": sale.device_id,
        "occurred_at": sale.occurred_at,
        "currency": sale.currency,
        "status": sale.status.value,
        "payment_method": sale.payment_method.value,
        "refund_of": sale.refund_of,
        "items": [
            {"sku": i.sku, "quantity": i.quantity, "unit_price": str(i.unit_price)}
            for i in sale.items
        ],
        "attributes": sale.attributes,
        "attribute_texts": {key: attribute_text(v) for key, v in sale.attributes.items()},
        **settlement_columns(sale.settlement),
    }
    for name in AMOUNTS:
        row.update(amount_columns(name, getattr(sale.amounts, name)))
    return row


def sale_of(row: Any) -> Sale:
    return Sale(
        id=row.id,
        session_id=row.session_id,
        device_id=row.device_id,
        occurred_at=row.occurred_at,
        currency=row.currency,
        amounts=Amounts(
            *(amount_of(row._mapping[f"{n}_units"], row._mapping[f"{n}_nanos"]) for n in AMOUNTS)
        ),
        payment_method=PaymentMethod(row.payment_method),
        status=SaleStatus(row.status),
        items=tuple(SaleItem(i["sku"], i["quantity"], Decimal(i["unit_price"])) for i in row.items),
        attributes=row.attributes,
        refund_of=row.refund_of,
        settlement=Settlement(
            SettlementState(row.settlement_state),
            row.settlement_date,
            row.processed_at,
            row.batch_id,
        ),
    )
