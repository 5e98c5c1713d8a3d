"""Jobs the server runs on a schedule while it serves: the reaper, rollups, retention, LiveKit
reconciliation. Each run is one log line with its counts and duration, and counted in the
metrics; what a run could not do (a tenant that failed, a server that did not answer) is one
line more each."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from application.livekit.reconcile_livekit import ReconcileLiveKit, ReconcileLiveKitCommand
from application.retention.apply_retention import ApplyRetention, ApplyRetentionCommand
from application.rollups.roll_up_usage import RollUpUsage, RollUpUsageCommand
from application.sessions.reap_stale_sessions import ReapStaleSessions, ReapStaleSessionsCommand
from application.storage import StorageError
from application.tenants.tenant_jobs import TenantFailure
from domain.livekit import KIND
from domain.session import SessionStatus
from entrypoints.http.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobRun:
    """What a run did, as counts for its log line; partial: some of it could not be done."""

    counts: dict[str, int]
    partial: bool


Job = Callable[[Metrics], Awaitable[JobRun]]


async def every(seconds: float, name: str, job: Job, metrics: Metrics) -> None:
    """Run `job` every `seconds` until cancelled; a failed run is logged and the next one tried."""
    while True:
        await asyncio.sleep(seconds)
        started = time.perf_counter()
        try:
            run = await job(metrics)
        except Exception as error:
            took = time.perf_counter() - started
            metrics.job_run(name, "failed", took)
            fields = {"job": name, "outcome": "failed", "ms": round(took * 1000, 1)}
            # The storage failing (down for a minute, each job each run) is a line that says
            # why; anything else is ours to fix, with its traceback.
            told = isinstance(error, StorageError)
            log.error(
                "scheduled job %s failed%s; trying again in %s s",
                name,
                f": the storage failed: {error}" if told else "",
                seconds,
                exc_info=None if told else error,
                extra={"fields": fields},
            )
            continue
        took = time.perf_counter() - started
        outcome = "partial" if run.partial else "ok"
        metrics.job_run(name, outcome, took)
        fields = {"job": name, "outcome": outcome, "ms": round(took * 1000, 1), **run.counts}
        log.info("job %s ran", name, extra={"fields": fields})


def reaper(reap: ReapStaleSessions) -> Job:
    async def run(metrics: Metrics) -> JobRun:
        reaped = await reap(ReapStaleSessionsCommand())
        for (kind, status), count in reaped.closed_by.items():
            metrics.sessions_closed(kind, status, "reaper", count)
        metrics.sessions_active(reaped.active)
        log_failures("reaper", reaped.failures)
        counts = {"sessions_reaped": reaped.closed, "sessions_active": reaped.active}
        return JobRun(counts, partial=bool(reaped.failures))

    return run


def rollups(roll_up: RollUpUsage) -> Job:
    async def run(_: Metrics) -> JobRun:
        done = await roll_up(RollUpUsageCommand())
        log_failures("rollups", done.failures)
        counts = {
            "tenants": done.tenants,
            "tenants_skipped": done.skipped,
            "hours_rolled_up": done.hours,
            "days_rolled_up": done.days,
            "funnel_days_rolled_up": done.funnel_days,
        }
        return JobRun(counts, partial=bool(done.failures))

    return run


def retention(apply: ApplyRetention) -> Job:
    async def run(_: Metrics) -> JobRun:
        deleted = await apply(ApplyRetentionCommand())
        log_failures("retention", deleted.failures)
        counts = {
            "erasures_finished": deleted.erasures_finished,
            **{
                f"{what}_deleted": getattr(deleted, what)
                for what in (
                    "sessions",
                    "events",
                    "snapshots",
                    "errors",
                    "metrics",
                    "hourly_rollups",
                    "daily_rollups",
                    "webhook_ids",
                )
            },
        }
        return JobRun(counts, partial=bool(deleted.failures))

    return run


def log_failures(job: str, failures: list[TenantFailure]) -> None:
    """The tenants a run could not serve (it served the others), one line each."""
    for failure in failures:
        log.error("%s: tenant %s failed: %s", job, failure.tenant_name, failure.error)


def livekit_reconciliation(reconcile: ReconcileLiveKit) -> Job:
    async def run(metrics: Metrics) -> JobRun:
        done = await reconcile(ReconcileLiveKitCommand())
        for problem in done.problems:
            log.warning("LiveKit reconciliation: %s", problem)
        # Reconciliation ends a stay (kind `livekit`) as `completed`: its participant had left.
        metrics.sessions_closed(KIND, SessionStatus.COMPLETED.value, "reconcile", done.ended)
        counts = {
            "tenants": done.tenants,
            "stays_present": done.present,
            "stays_ended": done.ended,
            "stays_unknown": done.unknown,
        }
        return JobRun(counts, partial=bool(done.problems))

    return run
