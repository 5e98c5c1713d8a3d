"""Usage is rolled up into hours and days, tenant by tenant (the server on a schedule,
`sessionmeter rollup` by hand).

A run recomputes every hour from where the previous run said to resume up to the current hour,
then the days those hours belong to; recomputing replaces, so a run repeated changes nothing.
The next run resumes at the earliest of this run's current hour and the start of the oldest
session still active (its hours change while it goes on and when it ends), less LATE_DATA for
webhooks and snapshots that arrive late. A lease keeps two runners off one tenant at once: the
second skips it, and the first's next run catches up whatever it missed.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from application.ports import (
    Clock,
    RollupLease,
    RollupLeases,
    RollupRepository,
    SnapshotLog,
    TenantRepository,
    UsageSource,
    Window,
)
from domain.clock import as_utc
from domain.errors import Conflict, NotFound
from domain.rollups import Period, Rollup, ServerLoad, day_of
from domain.tenants import Tenant

LEASE = timedelta(minutes=10)  # renewed after every hour; outlives a runner that died
LATE_DATA = timedelta(hours=1)
MAX_SNAPSHOTS_PER_HOUR = 100_000  # one a second from 27 servers

# Told (hours done, hours planned so far) as a run goes, for a progress bar.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RollupRun:
    tenants: int = 0  # rolled up by this run
    skipped: int = 0  # another runner held them
    hours: int = 0
    days: int = 0


class RollUpUsage:
    def __init__(
        self,
        tenants: TenantRepository,
        source: UsageSource,
        snapshots: SnapshotLog,
        rollups: RollupRepository,
        leases: RollupLeases,
        clock: Clock,
    ) -> None:
        self._tenants = tenants
        self._source = source
        self._snapshots = snapshots
        self._rollups = rollups
        self._leases = leases
        self._clock = clock

    async def __call__(
        self,
        tenant_name: str | None = None,
        since: datetime | None = None,
        progress: Progress | None = None,
    ) -> RollupRun:
        """Roll up every tenant (or one), from `since` if given, else from where each tenant's
        previous run said to resume."""
        since = since and as_utc("since", since)
        run = RollupRun()
        counter = _Counter(progress)
        for tenant in await self._chosen(tenant_name):
            holder = str(uuid.uuid4())
            now = self._clock.now()
            lease = await self._leases.acquire(tenant.id, holder, now, now + LEASE)
            if lease is None:
                run = RollupRun(run.tenants, run.skipped + 1, run.hours, run.days)
                continue
            hours, days = await self._roll_up(tenant, lease, since, now, counter)
            run = RollupRun(run.tenants + 1, run.skipped, run.hours + hours, run.days + days)
        return run

    async def _chosen(self, tenant_name: str | None) -> list[Tenant]:
        if tenant_name is None:
            return await self._tenants.all()
        tenant = await self._tenants.get_by_name(tenant_name)
        if tenant is None:
            raise NotFound(f"no tenant named {tenant_name}")
        return [tenant]

    async def _roll_up(
        self,
        tenant: Tenant,
        lease: RollupLease,
        since: datetime | None,
        now: datetime,
        counter: "_Counter",
    ) -> tuple[int, int]:
        # Before the oldest raw data still kept, a recomputed hour would lose what was deleted.
        kept_from = now - timedelta(days=tenant.settings.event_retention_days)
        start = max(since or lease.resume_from or tenant.created_at, kept_from)
        hours = list(Period.HOUR.buckets(start, now))
        counter.plan(len(hours))
        active_since = await self._source.earliest_active_start(tenant.id)
        snapshots_kept_from = now - timedelta(days=tenant.settings.snapshot_retention_days)
        for hour in hours:
            await self._roll_up_hour(tenant.id, hour, snapshots_kept_from)
            if not await self._leases.renew(tenant.id, lease.holder, self._clock.now() + LEASE):
                raise Conflict(f"tenant {tenant.name}: another runner took over its rollups")
            counter.advance()
        days = sorted({Period.DAY.start_of(h) for h in hours})
        for day in days:
            in_day = Window(day, day + Period.DAY.length)
            await self._rollups.replace(
                tenant.id, day_of(await self._rollups.find(tenant.id, Period.HOUR, in_day), day)
            )
        resume_from = min(now, active_since or now) - LATE_DATA
        await self._leases.release(tenant.id, lease.holder, Period.HOUR.start_of(resume_from))
        return len(hours), len(days)

    async def _roll_up_hour(
        self, tenant_id: str, hour: datetime, snapshots_kept_from: datetime
    ) -> None:
        end = hour + Period.HOUR.length
        activity = await self._source.activity(tenant_id, hour, end)
        if end > snapshots_kept_from:
            measured = await self._snapshots.find(
                tenant_id, None, Window(hour, end), MAX_SNAPSHOTS_PER_HOUR
            )
            load = ServerLoad.of(measured)
        else:
            # Retention has begun deleting this hour's snapshots: keep what was rolled up.
            stored = await self._rollups.find(tenant_id, Period.HOUR, Window(hour, end))
            load = stored[0].load if stored else ServerLoad()
        await self._rollups.replace(tenant_id, Rollup(Period.HOUR, hour, activity, load))


class _Counter:
    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._done = self._planned = 0

    def plan(self, hours: int) -> None:
        self._planned += hours
        self._tell()

    def advance(self) -> None:
        self._done += 1
        self._tell()

    def _tell(self) -> None:
        if self._progress is not None:
            self._progress(self._done, self._planned)
