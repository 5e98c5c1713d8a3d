"""Errors, metrics and sales to documents and back, so that a record read equals the one sent.

Amounts are Decimal128 (exact, and summed exactly by `$sum`); JSON documents and attributes are
stored as sent (BSON keeps strings, integers, doubles and booleans apart). A metric's breakdown
is an array of {step, ms}, which a pipeline can `$unwind`. A sale also keeps the text each
attribute groups as in a report: the server spells numbers otherwise than JSON does (2.0 as "2").
"""

from datetime import date
from decimal import Decimal

from bson.decimal128 import Decimal128

from adapters.mongodb.documents import Document
from domain.error_reports import Breadcrumb, ErrorReport, Impact, Loss
from domain.money import canonical
from domain.performance import Metric
from domain.sales import Amounts, Sale, SaleItem, Settlement, attribute_text


def money(amount: Decimal) -> Decimal128:
    return Decimal128(amount)


def amount_of(value: Decimal128) -> Decimal:
    return canonical(value.to_decimal())


def error_to_document(tenant_id: str, error: ErrorReport) -> Document:
    return {
        "tenant_id": tenant_id,
        "id": error.id,
        "at": error.at,
        "device_id": error.device_id,
        "app_version": error.app_version,
        "severity": error.severity.value,
        "type": error.type,
        "message": error.message,
        "session_id": error.session_id,
        "build": error.build,
        "code": error.code,
        "stack_trace": error.stack_trace,
        "fingerprint": error.fingerprint,
        "breadcrumbs": [
            {"at": b.at, "type": b.type, "label": b.label, "data": b.data}
            for b in error.breadcrumbs
        ],
        "context": error.context,
        "device_state": error.device_state,
        "impact": None if error.impact is None else _impact_to_document(error.impact),
    }


def _impact_to_document(impact: Impact) -> Document:
    loss = impact.estimated_loss
    return {
        "session_interrupted": impact.session_interrupted,
        "sale_lost": impact.sale_lost,
        "estimated_loss": None
        if loss is None
        else {"amount": money(loss.amount), "currency": loss.currency},
        "user_retried": impact.user_retried,
        "recovered": impact.recovered,
    }


def error_from_document(document: Document) -> ErrorReport:
    impact = document["impact"]
    return ErrorReport(
        id=document["id"],
        at=document["at"],
        device_id=document["device_id"],
        app_version=document["app_version"],
        severity=document["severity"],
        type=document["type"],
        message=document["message"],
        session_id=document["session_id"],
        build=document["build"],
        code=document["code"],
        stack_trace=document["stack_trace"],
        fingerprint=document["fingerprint"],
        breadcrumbs=tuple(
            Breadcrumb(b["at"], b["type"], b["label"], b["data"]) for b in document["breadcrumbs"]
        ),
        context=document["context"],
        device_state=document["device_state"],
        impact=None if impact is None else _impact_from_document(impact),
    )


def _impact_from_document(document: Document) -> Impact:
    loss = document["estimated_loss"]
    return Impact(
        session_interrupted=document["session_interrupted"],
        sale_lost=document["sale_lost"],
        estimated_loss=None if loss is None else Loss(amount_of(loss["amount"]), loss["currency"]),
        user_retried=document["user_retried"],
        recovered=document["recovered"],
    )


def metric_to_document(tenant_id: str, metric: Metric) -> Document:
    return {
        "tenant_id": tenant_id,
        "id": metric.id,
        "device_id": metric.device_id,
        "app_version": metric.app_version,
        "type": metric.type,
        "started_at": metric.started_at,
        "duration_ms": metric.duration_ms,
        "success": metric.success,
        "session_id": metric.session_id,
        "error_code": metric.error_code,
        "steps": [{"step": step, "ms": ms} for step, ms in metric.breakdown.items()],
        "context": metric.context,
    }


def metric_from_document(document: Document) -> Metric:
    return Metric(
        id=document["id"],
        device_id=document["device_id"],
        app_version=document["app_version"],
        type=document["type"],
        started_at=document["started_at"],
        duration_ms=document["duration_ms"],
        success=document["success"],
        session_id=document["session_id"],
        error_code=document["error_code"],
        breakdown={s["step"]: s["ms"] for s in document["steps"]},
        context=document["context"],
    )


def sale_to_document(tenant_id: str, sale: Sale) -> Document:
    a = sale.amounts
    return {
        "tenant_id": tenant_id,
        "id": sale.id,
        "session_id": sale.session_id,
        "device_id": sale.device_id,
        "occurred_at": sale.occurred_at,
        "currency": sale.currency,
        "amounts": {
            "gross": money(a.gross),
            "discount": money(a.discount),
            "tax": money(a.tax),
            "net": money(a.net),
        },
        "payment_method": sale.payment_method.value,
        "status": sale.status.value,
        "items": [
            {"sku": i.sku, "quantity": i.quantity, "unit_price": money(i.unit_price)}
            for i in sale.items
        ],
        "attributes": sale.attributes,
        "attribute_texts": {key: attribute_text(v) for key, v in sale.attributes.items()},
        "refund_of": sale.refund_of,
        "settlement": settlement_to_document(sale.settlement),
    }


def settlement_to_document(settlement: Settlement) -> Document:
    scheduled = settlement.scheduled_date
    return {
        "state": settlement.state.value,
        # BSON has no date without a time: the ISO day, as sent.
        "scheduled_date": None if scheduled is None else scheduled.isoformat(),
        "processed_at": settlement.processed_at,
        "batch_id": settlement.batch_id,
    }


def sale_from_document(document: Document) -> Sale:
    a = document["amounts"]
    return Sale(
        id=document["id"],
        session_id=document["session_id"],
        device_id=document["device_id"],
        occurred_at=document["occurred_at"],
        currency=document["currency"],
        amounts=Amounts(*(amount_of(a[name]) for name in ("gross", "discount", "tax", "net"))),
        payment_method=document["payment_method"],
        status=document["status"],
        items=tuple(
            SaleItem(i["sku"], i["quantity"], amount_of(i["unit_price"])) for i in document["items"]
        ),
        attributes=document["attributes"],
        refund_of=document["refund_of"],
        settlement=_settlement_from_document(document["settlement"]),
    )


def _settlement_from_document(document: Document) -> Settlement:
    scheduled = document["scheduled_date"]
    return Settlement(
        state=document["state"],
        scheduled_date=None if scheduled is None else date.fromisoformat(scheduled),
        processed_at=document["processed_at"],
        batch_id=document["batch_id"],
    )
