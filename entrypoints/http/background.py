"""Jobs the server runs on a schedule while it serves: the reaper, rollups, retention, LiveKit
reconciliation."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from application.livekit.reconcile_livekit import ReconcileLiveKit, ReconcileLiveKitCommand
from application.retention.apply_retention import ApplyRetention, ApplyRetentionCommand
from application.rollups.roll_up_usage import RollUpUsage, RollUpUsageCommand
from application.sessions.reap_stale_sessions import ReapStaleSessions, ReapStaleSessionsCommand
from application.tenants.tenant_jobs import TenantFailure

log = logging.getLogger(__name__)


async def every(seconds: float, job: Callable[[], Awaitable[object]]) -> None:
    """Run `job` every `seconds` until cancelled; a failed run is logged and the next one tried."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception:
            log.exception("scheduled job failed; trying again in %s s", seconds)


async def reap_stale_sessions(reap: ReapStaleSessions) -> None:
    """One reaper run; each tenant it could not reap is one log line."""
    log_failures("reaper", (await reap(ReapStaleSessionsCommand())).failures)


async def roll_up_usage(roll_up: RollUpUsage) -> None:
    """One rollup run; each tenant whose rollup failed is one log line."""
    log_failures("rollups", (await roll_up(RollUpUsageCommand())).failures)


async def apply_retention(apply: ApplyRetention) -> None:
    """One retention run; each tenant whose retention failed is one log line."""
    log_failures("retention", (await apply(ApplyRetentionCommand())).failures)


def log_failures(job: str, failures: list[TenantFailure]) -> None:
    """The tenants a run could not serve (it served the others), one line each."""
    for failure in failures:
        log.error("%s: tenant %s failed: %s", job, failure.tenant_name, failure.error)


async def reconcile_livekit(reconcile: ReconcileLiveKit) -> None:
    """One reconciliation run; each server that did not answer and each tenant that failed is
    one log line (the run served the others)."""
    done = await reconcile(ReconcileLiveKitCommand())
    for problem in done.problems:
        log.warning("LiveKit reconciliation: %s", problem)
    if done.ended:
        log.info("LiveKit reconciliation ended %s stay(s) whose participant had left", done.ended)
