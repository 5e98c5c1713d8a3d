"""The bodies of device errors: one or a batch in, errors and the grouped report out."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec

from domain.error_reports import Breadcrumb, ErrorGroup, ErrorReport, Impact, Loss, Severity
from domain.money import amount_text
from entrypoints.http.schemas.common import JSONObject, Timestamp, documented_as


class BreadcrumbBody(msgspec.Struct, kw_only=True):
    at: Timestamp
    type: str
    label: str | None = None
    data: JSONObject | None = None


class LossBody(msgspec.Struct, kw_only=True):
    amount: Decimal  # a decimal string or a JSON number, kept exact
    currency: str


class ImpactBody(msgspec.Struct, kw_only=True):
    session_interrupted: bool = False
    sale_lost: bool = False
    estimated_loss: LossBody | None = None
    user_retried: bool = False
    recovered: bool = False


class ErrorBody(msgspec.Struct, kw_only=True):
    id: str
    at: Timestamp
    device_id: str
    session_id: str | None = None
    app_version: str
    build: str | None = None
    severity: Severity
    type: str
    code: str | None = None
    message: str
    stack_trace: str | None = None
    fingerprint: str | None = None  # absent: the server computes it
    breadcrumbs: list[BreadcrumbBody] = []
    context: JSONObject | None = None
    device_state: JSONObject | None = None
    impact: ImpactBody | None = None


class ErrorBatchBody(msgspec.Struct, kw_only=True):
    errors: list[Annotated[msgspec.Raw, documented_as(ErrorBody)]]


class LossOut(msgspec.Struct):
    amount: str
    currency: str


class ImpactOut(msgspec.Struct):
    session_interrupted: bool
    sale_lost: bool
    estimated_loss: LossOut | None
    user_retried: bool
    recovered: bool


class BreadcrumbOut(msgspec.Struct):
    at: datetime
    type: str
    label: str | None
    data: JSONObject | None


class ErrorOut(msgspec.Struct):
    id: str
    at: datetime
    device_id: str
    session_id: str | None
    app_version: str
    build: str | None
    severity: Severity
    type: str
    code: str | None
    message: str
    stack_trace: str | None
    fingerprint: str
    breadcrumbs: list[BreadcrumbOut]
    context: JSONObject | None
    device_state: JSONObject | None
    impact: ImpactOut | None

    @classmethod
    def of(cls, e: ErrorReport) -> "ErrorOut":
        impact = None
        if (i := e.impact) is not None:
            loss = i.estimated_loss
            loss_out = None if loss is None else LossOut(amount_text(loss.amount), loss.currency)
            impact = ImpactOut(
                i.session_interrupted, i.sale_lost, loss_out, i.user_retried, i.recovered
            )
        crumbs = [BreadcrumbOut(b.at, b.type, b.label, b.data) for b in e.breadcrumbs]
        return cls(
            e.id, e.at, e.device_id, e.session_id, e.app_version, e.build, e.severity, e.type,
            e.code, e.message, e.stack_trace, e.fingerprint, crumbs, e.context, e.device_state,
            impact,
        )  # fmt: skip


def error_report(body: ErrorBody, session_id: str | None) -> ErrorReport:
    impact = None
    if (i := body.impact) is not None:
        sent = i.estimated_loss
        loss = None if sent is None else Loss(sent.amount, sent.currency)
        impact = Impact(i.session_interrupted, i.sale_lost, loss, i.user_retried, i.recovered)
    return ErrorReport(
        id=body.id,
        at=body.at,
        device_id=body.device_id,
        app_version=body.app_version,
        severity=body.severity,
        type=body.type,
        message=body.message,
        session_id=session_id,
        build=body.build,
        code=body.code,
        stack_trace=body.stack_trace,
        fingerprint=body.fingerprint or "",
        breadcrumbs=tuple(Breadcrumb(b.at, b.type, b.label, b.data) for b in body.breadcrumbs),
        context=body.context,
        device_state=body.device_state,
        impact=impact,
    )


class ErrorGroupOut(msgspec.Struct):
    day: str | None  # with group_by=day: the tenant's calendar day (YYYY-MM-DD); else null
    fingerprint: str
    type: str
    code: str | None
    sample_message: str
    count: int
    devices: int
    sessions: int
    first_seen: datetime
    last_seen: datetime
    app_versions: dict[str, int]
    severity: Severity
    sales_lost: int
    estimated_loss: dict[str, str]  # per currency, exact decimal strings

    @classmethod
    def of(cls, g: ErrorGroup) -> "ErrorGroupOut":
        loss = {currency: amount_text(amount) for currency, amount in g.estimated_loss.items()}
        return cls(
            g.day, g.fingerprint, g.type, g.code, g.sample_message, g.count, g.devices,
            g.sessions, g.first_seen, g.last_seen, g.app_versions, g.severity, g.sales_lost, loss,
        )  # fmt: skip
