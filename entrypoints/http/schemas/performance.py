"""The bodies of performance metrics: one or a batch in, the percentile report out."""

from datetime import datetime
from typing import Annotated, Any

import msgspec

from domain.errors import InvalidInput
from domain.performance import Metric, PerformanceRow
from entrypoints.http.schemas.common import JSONObject, Timestamp, documented_as


class MetricBody(msgspec.Struct, kw_only=True):
    id: str
    device_id: str
    session_id: str | None = None
    app_version: str
    type: str
    started_at: Timestamp
    duration_ms: float | None = None  # or ended_at
    ended_at: Timestamp | None = None
    success: bool
    error_code: str | None = None
    breakdown: dict[str, float] = {}  # step: ms
    context: JSONObject | None = None


class MetricBatchBody(msgspec.Struct, kw_only=True):
    metrics: list[Annotated[msgspec.Raw, documented_as(MetricBody)]]


class MetricOut(msgspec.Struct):
    id: str
    device_id: str
    session_id: str | None
    app_version: str
    type: str
    started_at: datetime
    duration_ms: float
    success: bool
    error_code: str | None
    breakdown: dict[str, float]
    context: JSONObject | None

    @classmethod
    def of(cls, m: Metric) -> "MetricOut":
        return cls(
            m.id, m.device_id, m.session_id, m.app_version, m.type, m.started_at, m.duration_ms,
            m.success, m.error_code, m.breakdown, m.context,
        )  # fmt: skip


def metric(body: MetricBody, session_id: str | None) -> Metric:
    fields: dict[str, Any] = {
        "id": body.id,
        "device_id": body.device_id,
        "app_version": body.app_version,
        "type": body.type,
        "success": body.success,
        "session_id": session_id,
        "error_code": body.error_code,
        "breakdown": body.breakdown,
        "context": body.context,
    }
    if body.duration_ms is not None and body.ended_at is not None:
        raise InvalidInput("ended_at", "give duration_ms or ended_at, not both")
    if body.duration_ms is not None:
        return Metric(started_at=body.started_at, duration_ms=body.duration_ms, **fields)
    if body.ended_at is not None:
        return Metric.ended(body.started_at, body.ended_at, **fields)
    raise InvalidInput("duration_ms", "is required (or ended_at)")


class StepTimesOut(msgspec.Struct):
    p50_ms: float
    p95_ms: float


class PerformanceRowOut(msgspec.Struct):
    type: str
    group: str
    count: int
    success_rate: float  # 0-1
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    breakdown: dict[str, StepTimesOut]

    @classmethod
    def of(cls, r: PerformanceRow) -> "PerformanceRowOut":
        steps = {step: StepTimesOut(t.p50_ms, t.p95_ms) for step, t in r.breakdown.items()}
        return cls(
            r.type, r.group, r.count, r.success_rate, r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms,
            steps,
        )  # fmt: skip
