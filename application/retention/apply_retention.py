"""Delete what each tenant keeps no longer."""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from application.data_rights.erase_subject import ABANDONED_AFTER, EraseSubject
from application.data_rights.ports import Erasure
from application.data_rights.sweeps import SESSIONS, delete, in_batches
from application.ports import Clock
from application.retention.ports import Retention
from application.tenants.ports import TenantRepository
from application.tenants.tenant_jobs import TenantFailure, chosen_tenants, describe, each_tenant
from application.trials.ports import PlanRepository
from domain.calendar import Period
from domain.errors import Contended
from domain.livekit import WEBHOOK_MEMORY
from domain.plans import counted_kinds
from domain.tenants import Tenant

BATCH = 1000


@dataclass(frozen=True)
class ApplyRetentionCommand:
    tenant_name: str | None = None  # None: every tenant


@dataclass(frozen=True)
class Deleted:
    snapshots: int = 0
    events: int = 0
    hourly_rollups: int = 0
    daily_rollups: int = 0
    webhook_ids: int = 0
    errors: int = 0
    metrics: int = 0
    sessions: int = 0
    erasures_finished: int = 0  # erasures a failure had left unfinished (ABANDONED_AFTER)
    failures: list[TenantFailure] = field(default_factory=list)  # tenants whose retention failed

    def __add__(self, other: "Deleted") -> "Deleted":
        return Deleted(
            self.snapshots + other.snapshots,
            self.events + other.events,
            self.hourly_rollups + other.hourly_rollups,
            self.daily_rollups + other.daily_rollups,
            self.webhook_ids + other.webhook_ids,
            self.errors + other.errors,
            self.metrics + other.metrics,
            self.sessions + other.sessions,
            self.erasures_finished + other.erasures_finished,
            self.failures + other.failures,
        )


class ApplyRetention:
    """Old snapshots, events, hourly rollups, device errors (365 days unless set) and performance
    metrics (90 days) are deleted as each tenant's settings say (the server does it on a
    schedule; `sessionmeter retention apply` does it now), in bounded batches. Daily rollups are
    kept for good unless a tenant sets a window for them; sales and the ledger are never deleted.
    Ended sessions go with their events once older than `session_retention_days` (unset:
    kept for good), except those a sale or a ledger entry names or whose charge is pending or
    charged (the books keep them), and those a plan's limit counts (a subject's, of a kind a
    limiting plan names: `domain.plans.counted_by_a_limit`), which deleting would hand their
    subject its trial again. Handled LiveKit webhook ids are forgotten after 30 days
    (WEBHOOK_MEMORY). Then an erasure of a subject that a failure left unfinished (its sessions
    under the pseudonym, its ledger not moved yet) is finished once ABANDONED_AFTER old, as if
    it were asked again (EraseSubject.resume); one still under way by then is left to itself,
    one that fails again is reported and the others are still tried. Tenants are served one at
    a time: one whose retention fails is reported in the result and the others are still
    served."""

    def __init__(
        self,
        tenants: TenantRepository,
        retention: Retention,
        erasure: Erasure,
        erase_subject: EraseSubject,
        plans: PlanRepository,
        clock: Clock,
    ) -> None:
        self._tenants = tenants
        self._plans = plans
        self._retention = retention
        self._erasure = erasure
        self._erase_subject = erase_subject
        self._clock = clock

    async def __call__(self, command: ApplyRetentionCommand) -> Deleted:
        tenants = await chosen_tenants(self._tenants, command.tenant_name)
        now = self._clock.now()
        deleted = Deleted()

        async def apply(tenant: Tenant) -> None:
            nonlocal deleted
            deleted += await self._apply(tenant, now)

        failures = await each_tenant(self._tenants, tenants, apply)
        return replace(deleted, failures=deleted.failures + failures)

    async def _apply(self, tenant: Tenant, now: datetime) -> Deleted:
        settings = tenant.settings
        r, tid = self._retention, tenant.id

        def before(days: int) -> datetime:
            return now - timedelta(days=days)

        snapshots = await in_batches(
            lambda: r.delete_snapshots(tid, before(settings.snapshot_retention_days), BATCH)
        )
        # What clients may still send (dated within the late-data window) stays, whatever the
        # retention: a copy of a deleted event would be stored and counted again, a late event
        # of a deleted session refused as unknown.
        still_sent = now - settings.late_data_window
        events = await in_batches(
            lambda: r.delete_events(
                tid, min(before(settings.event_retention_days), still_sent), BATCH
            )
        )
        hourly = await in_batches(
            lambda: r.delete_rollups(tid, Period.HOUR, now - settings.hourly_rollups_kept, BATCH)
        )
        daily = 0
        if (days := settings.daily_rollup_retention_days) is not None:
            daily = await in_batches(lambda: r.delete_rollups(tid, Period.DAY, before(days), BATCH))
        webhook_ids = await in_batches(lambda: r.forget_webhooks(tid, now - WEBHOOK_MEMORY, BATCH))
        errors = await in_batches(
            lambda: r.delete_errors(tid, before(settings.error_retention_days), BATCH)
        )
        metrics = await in_batches(
            lambda: r.delete_metrics(tid, before(settings.performance_retention_days), BATCH)
        )
        sessions = 0
        if (sessions_kept := settings.sessions_kept) is not None:
            cutoff, counted = now - sessions_kept, counted_kinds(await self._plans.all(tid))
            # Each step resumes past the last, so the kept sessions among the expired ones are
            # walked once a run, not once a step.
            after = None
            while found := await self._erasure.expired_sessions(
                tid, cutoff, SESSIONS, counted, after
            ):
                removed = await delete(self._erasure, tid, [place.id for place in found])
                sessions, events = sessions + removed.sessions, events + removed.events
                after = found[-1]
        deleted = Deleted(snapshots, events, hourly, daily, webhook_ids, errors, metrics, sessions)
        return deleted + await self._finish_erasures(tenant, now)

    async def _finish_erasures(self, tenant: Tenant, now: datetime) -> Deleted:
        """Finish the tenant's abandoned erasures (EraseSubject.resume: one that finished
        meanwhile is not begun again). One that fails again is reported, without the subject's
        id (it asked to be forgotten), and the others are still tried."""
        finished, failures = 0, []
        # Page after page, so that erasures failing again (or still at work) hide none after them.
        abandoned, after = now - ABANDONED_AFTER, None
        while subjects := await self._erasure.unfinished(tenant.id, abandoned, SESSIONS, after):
            after = subjects[-1]
            for subject_id in subjects:
                try:
                    resumed = await self._erase_subject.resume(tenant, subject_id)
                except Contended:
                    continue  # still under way elsewhere, holding its ledgers: it finishes itself
                except Exception as error:  # isolation: the next erasure may well be finished
                    failures.append(
                        TenantFailure(
                            tenant.name,
                            f"an abandoned erasure could not be finished: {describe(error)}",
                        )
                    )
                    continue
                finished += resumed is not None
        return Deleted(erasures_finished=finished, failures=failures)
