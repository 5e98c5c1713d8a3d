"""Record how long devices took to do things."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from application.ports import Clock
from application.sessions.ports import SessionRepository
from application.telemetry.ports import MetricLog
from application.telemetry.recorded import Recorded, RecordOnce
from domain.errors import InvalidInput
from domain.performance import Metric
from domain.tenants import Access


@dataclass(frozen=True)
class RecordMetricsCommand:
    tenant_id: str
    # In the client's order; one that could not be read is already the reason why.
    metrics: Sequence[Metric | InvalidInput]
    access: Access = field(
        default_factory=Access
    )  # the caller's key: a scoped one sends only its devices' records


class RecordMetrics:
    """Devices report performance metrics (an app start, a capture, a print, a payment) one at a
    time or in batches of at most 100, each with its duration in milliseconds (or its end, from
    which the duration is taken), whether it succeeded, and optionally its steps' times. Each is
    judged on its own as errors are: new, a replay of the same id and content, a `conflict` (the
    id with other content), or a `validation_error` (a field malformed, a negative duration, an
    end before the start, a start more than 5 minutes ahead, a session the tenant does not
    have)."""

    def __init__(self, metrics: MetricLog, sessions: SessionRepository, clock: Clock) -> None:
        self._record = RecordOnce(metrics, sessions, clock, _instant, Metric.__eq__)

    async def __call__(self, command: RecordMetricsCommand) -> Recorded[Metric]:
        await self._record.check_batch(
            command.tenant_id, command.metrics, "metrics", command.access
        )
        return await self._record(command.tenant_id, command.metrics)


def _instant(metric: Metric) -> tuple[str, datetime]:
    return "started_at", metric.started_at
