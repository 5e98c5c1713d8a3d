"""Performance metrics: one or a batch in (the percentile report is a report)."""

from litestar import Controller, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from application.sessions.session_ids import canonical_session_id
from application.telemetry.record_metrics import RecordMetrics, RecordMetricsCommand
from application.tenants.authenticate import Principal
from domain.performance import Metric
from domain.tenants import Role
from entrypoints.http.auth import needs
from entrypoints.http.batches import read_items
from entrypoints.http.errors import documented
from entrypoints.http.openapi import rules_of
from entrypoints.http.recorded import BATCH, ONE, created_or_replayed
from entrypoints.http.schemas.common import BatchResultOut
from entrypoints.http.schemas.performance import MetricBatchBody, MetricBody, MetricOut, metric


class PerformanceController(Controller):
    path = "/performance"
    tags = ["kiosk telemetry"]
    opt = needs(Role.INGEST)

    @post(
        "/",
        summary="Report how long something took",
        operation_id="recordMetric",
        description=rules_of(RecordMetrics),
        status_code=201,
        responses=documented(ONE),
    )
    async def record(
        self,
        data: JSONBody[MetricBody],
        caller: NamedDependency[Principal],
        record_metrics: NamedDependency[RecordMetrics],
    ) -> Response[MetricOut]:
        recorded = await record_metrics(
            RecordMetricsCommand(caller.tenant.id, [_metric(data)], caller.access)
        )
        return created_or_replayed(recorded, MetricOut.of)

    @post(
        "/batch",
        summary="Report a batch of metrics",
        operation_id="recordMetrics",
        description=rules_of(RecordMetrics),
        status_code=200,
        responses=documented(BATCH),
    )
    async def record_batch(
        self,
        data: JSONBody[MetricBatchBody],
        caller: NamedDependency[Principal],
        record_metrics: NamedDependency[RecordMetrics],
    ) -> BatchResultOut:
        metrics = read_items(data.metrics, MetricBody, _metric)
        command = RecordMetricsCommand(caller.tenant.id, metrics, caller.access)
        return BatchResultOut.of(await record_metrics(command))


def _metric(body: MetricBody) -> Metric:
    session_id = body.session_id and canonical_session_id(body.session_id, "session_id")
    return metric(body, session_id)
