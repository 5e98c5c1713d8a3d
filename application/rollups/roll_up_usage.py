"""Roll usage up into hourly and daily buckets, tenant by tenant."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from itertools import groupby

from application.funnels.roll_up_funnels import RollUpFunnels
from application.ports import Clock, Window
from application.rollups.ports import RollupLease, RollupLeases, RollupRepository, UsageSource
from application.snapshots.ports import SnapshotLog
from application.tenants.ports import TenantRepository
from application.tenants.tenant_jobs import TenantFailure, chosen_tenants, each_tenant
from domain.calendar import HOUR, Bucket, Period, hour_of
from domain.clock import as_utc
from domain.errors import Conflict
from domain.rollups import Rollup, ServerLoad, sum_of
from domain.tenants import Tenant, TenantSettings

LEASE = timedelta(minutes=10)  # renewed after every hour; outlives a runner that died
LATE_DATA = timedelta(hours=1)
# Snapshots read at once (one a second from 27 servers an hour): an hour with more is read in
# halves.
MAX_SNAPSHOTS_PER_HOUR = 100_000
# Retention may run on another machine with its clock a little ahead, or while a long run goes
# on: a bucket this close to a retention cutoff counts as partly deleted already.
RETENTION_MARGIN = timedelta(hours=1)

# Told (hours done, hours planned so far) as a run goes, for a progress bar.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RollupRun:
    tenants: int = 0  # rolled up by this run
    skipped: int = 0  # another runner held them
    hours: int = 0
    days: int = 0
    failures: list[TenantFailure] = field(default_factory=list)  # tenants whose run failed
    funnel_days: int = 0  # a funnel's day each

    def __add__(self, other: "RollupRun") -> "RollupRun":
        return RollupRun(
            self.tenants + other.tenants,
            self.skipped + other.skipped,
            self.hours + other.hours,
            self.days + other.days,
            self.failures + other.failures,
            self.funnel_days + other.funnel_days,
        )


@dataclass(frozen=True)
class RollUpUsageCommand:
    tenant_name: str | None = None  # None: every tenant
    since: datetime | None = None  # None: from where each tenant's previous run said to resume
    progress: Progress | None = None


class RollUpUsage:
    """Usage is rolled up into hours and days, tenant by tenant (the server on a schedule,
    `sessionmeter rollup` by hand), for every tenant or the one named (NotFound if there is
    none).

    A run recomputes every hour from where the previous run said to resume (or from `since`,
    when given) up to the current hour, then the days (of the tenant's time zone) those hours
    belong to; recomputing replaces, so a run repeated changes nothing. The next run resumes at
    the earliest of this run's current hour and the last sign of life of the active session
    seen least recently (an active session counts until then, so the hours after it change
    while it goes on), less LATE_DATA for webhooks and snapshots that arrive late. What changes
    an hour before that rewinds to it (RollupRewinds): an end given before the session's last
    sign of life (RecordExit), a session stored with an old start (StartSession, a LiveKit stay
    whose join was lost), late events, errors, sales and tracks, an erasure that takes a
    dimension's value out. So a session open for weeks costs each run its last hours, not its
    weeks. A lease keeps two runners off one tenant at once: the second skips it, and the
    first's next run catches up whatever it missed.

    Retention deletes what buckets are made of (events, snapshots, hourly buckets), so a bucket
    is recomputed only while all of its sources are kept: an hour none of whose events are gone,
    whose servers' load comes from snapshots all kept or else from its stored hour; a day from
    its hours when this run recomputed all of them or none of the stored ones can have been
    deleted. Anything older keeps what it had, however far back a run is asked to reach
    (`rollup --since`).

    Then the tenant's funnels (RollUpFunnels) for the days it recomputed and any other day
    since the tenant's creation (or `since`, when older) whose events are all kept that they
    lack, final when the day ends before the start of the oldest session still active (less
    LATE_DATA): a session's funnel day is that of its start, and counts its events and how it
    ends.

    The lease keeps the cut (time zone and dimensions, TenantSettings.rollup_cut) the rollups
    were made by: a run that finds the tenant's changed, or not recorded, makes every hour and
    day whose sources are kept again, from the tenant's creation (or `since`, when older).

    Tenants are served one at a time, and one whose run fails is reported in the result: its
    lease is given back without moving its resume point or its cut, and the run goes on with
    the next tenant.
    """

    def __init__(
        self,
        tenants: TenantRepository,
        source: UsageSource,
        snapshots: SnapshotLog,
        rollups: RollupRepository,
        leases: RollupLeases,
        funnels: RollUpFunnels,
        clock: Clock,
    ) -> None:
        self._tenants = tenants
        self._source = source
        self._snapshots = snapshots
        self._rollups = rollups
        self._leases = leases
        self._funnels = funnels
        self._clock = clock

    async def __call__(self, command: RollUpUsageCommand) -> RollupRun:
        since = command.since and as_utc("since", command.since)
        counter = _Counter(command.progress)
        run = RollupRun()

        async def roll_up(tenant: Tenant) -> None:
            nonlocal run
            run += await self._leased(tenant, since, counter)

        chosen = await chosen_tenants(self._tenants, command.tenant_name)
        failures = await each_tenant(self._tenants, chosen, roll_up)
        return replace(run, failures=failures)

    async def _leased(
        self, tenant: Tenant, since: datetime | None, counter: "_Counter"
    ) -> RollupRun:
        holder = str(uuid.uuid4())
        now = self._clock.now()
        lease = await self._leases.acquire(tenant.id, holder, now, now + LEASE)
        if lease is None:
            return RollupRun(skipped=1)
        # Given back whatever happens; a run that failed leaves the resume point and the cut
        # where they were, so the next run makes again what this one was to.
        resume_from, cut = lease.resume_from or tenant.created_at, lease.cut
        if lease.resume_from is not None and lease.cut != tenant.settings.rollup_cut:
            # Made by another time zone or other dimensions (or not recorded, or never made and
            # rewound by data older than the tenant): all again, from the tenant's creation or
            # a rewind before it. The tenant was read just before the lease; a change made
            # since, the next run finds.
            since = min(t for t in (since, lease.resume_from, tenant.created_at) if t is not None)
            lease = replace(lease, resume_from=None)
        try:
            run = await self._roll_up(tenant, lease, since, now, counter)
            resume_from, cut = run.resume_from, tenant.settings.rollup_cut
        finally:
            await self._leases.release(tenant.id, holder, resume_from, cut)
        return RollupRun(tenants=1, hours=run.hours, days=run.days, funnel_days=run.funnel_days)

    async def _roll_up(
        self,
        tenant: Tenant,
        lease: RollupLease,
        since: datetime | None,
        now: datetime,
        counter: "_Counter",
    ) -> "_TenantRun":
        settings = tenant.settings
        calendar = settings.calendar
        snapshots_kept_from = _kept_from(now, timedelta(days=settings.snapshot_retention_days))
        events_kept_from = _events_kept_from(now, settings)
        oldest = max(
            events_kept_from,
            min(snapshots_kept_from, _kept_from(now, settings.hourly_rollups_kept)),
        )
        # A rewind pending before `since` is recomputed too: the lease gave it to this run.
        asked = min((t for t in (since, lease.resume_from) if t), default=tenant.created_at)
        start = max(asked, oldest)
        hours = [b.start for b in calendar.buckets(Period.HOUR, start, now)]
        written_from = hour_of(start)
        counter.plan(len(hours))
        resume_from = _resume(now, await self._source.earliest_active_seen(tenant.id), oldest)
        final_before = _resume(now, await self._source.earliest_active_start(tenant.id), oldest)
        days, recomputed = 0, []
        for day, hours_of_day in groupby(hours, partial(calendar.start_of, Period.DAY)):
            rolled = []
            for hour in hours_of_day:
                rolled.append(await self._roll_up_hour(tenant, hour, snapshots_kept_from))
                await self._renew(tenant, lease, written_from)
                counter.advance()
            # Whole: no hour of the day starts before this run's first.
            whole = hours[0] - HOUR < day
            days += await self._roll_up_day(tenant, day, rolled, whole, events_kept_from)
            recomputed.append(day)
        # From the tenant's creation, or from where the run was asked to start when older: data
        # imported or loaded (`since`), a session sent late into a day before it (a rewind).
        first = min(tenant.created_at, asked)
        kept = calendar.buckets(Period.DAY, max(events_kept_from, first), now)
        # A day is tallied from its events: only while all of them are kept.
        whole_days = [d for d in kept if d.start >= events_kept_from]
        funnel_days = await self._roll_up_funnels(
            tenant, lease, whole_days, recomputed, final_before, written_from
        )
        await self._renew(tenant, lease, written_from)  # the days written since the last hour's
        return _TenantRun(len(hours), days, funnel_days, resume_from)

    async def _roll_up_funnels(
        self,
        tenant: Tenant,
        lease: RollupLease,
        days: list[Bucket],
        recomputed: list[datetime],
        final_before: datetime,
        written_from: datetime,
    ) -> int:
        """The funnels' days due among `days`, final when they end before `final_before`."""
        due = await self._funnels.due(tenant, days, recomputed)
        for funnel, day in due:
            await self._funnels.roll_up(tenant, funnel, day, final=day.end <= final_before)
            await self._renew(tenant, lease, written_from)
        return len(due)

    async def _renew(self, tenant: Tenant, lease: RollupLease, written_from: datetime) -> None:
        """Keep the lease; a runner that lost it (it stalled past it) may have written buckets
        over the new holder's, made from older data: the next run recomputes from the first
        hour this one wrote."""
        if not await self._leases.renew(tenant.id, lease.holder, self._clock.now() + LEASE):
            await self._leases.rewind(tenant.id, written_from)
            raise Conflict(f"tenant {tenant.name}: another runner took over its rollups")

    async def _roll_up_hour(
        self, tenant: Tenant, hour: datetime, snapshots_kept_from: datetime
    ) -> Rollup:
        tenant_id, end = tenant.id, hour + HOUR
        activity = await self._source.activity(tenant_id, hour, end, tenant.settings.dimensions)
        if hour >= snapshots_kept_from:
            load = await self._server_load(tenant_id, hour, end)
        else:
            # Retention has begun deleting this hour's snapshots: keep what was rolled up.
            stored = await self._rollups.find(tenant_id, Period.HOUR, Window(hour, end))
            load = stored[0].load if stored else ServerLoad()
        rollup = Rollup(Period.HOUR, hour, activity, load)
        await self._rollups.replace(tenant_id, rollup)
        return rollup

    async def _server_load(self, tenant_id: str, start: datetime, end: datetime) -> ServerLoad:
        """What the tenant's servers reported in [start, end), read MAX_SNAPSHOTS_PER_HOUR at
        most at a time: a window with more is read in halves (a snapshot's traffic is since the
        previous one of its source, wherever that is), down to a millisecond, what is kept."""
        window = Window(start, end)
        measured = await self._snapshots.find(tenant_id, None, window, MAX_SNAPSHOTS_PER_HOUR)
        half = (end - start) / 2
        if len(measured) < MAX_SNAPSHOTS_PER_HOUR or half < timedelta(milliseconds=1):
            return ServerLoad.of(measured)
        middle = start + half
        first = await self._server_load(tenant_id, start, middle)
        return first + await self._server_load(tenant_id, middle, end)

    async def _roll_up_day(
        self,
        tenant: Tenant,
        day: datetime,
        rolled: list[Rollup],
        whole: bool,
        events_kept_from: datetime,
    ) -> bool:
        """Rebuild the tenant's local day from its hours: those just `rolled` when they are the
        `whole` day, else those stored, unless retention may have deleted some (then it stays as
        it was). A day that does not start on a UTC hour (Asia/Kolkata's) is no sum of hours:
        its sessions' activity is aggregated from the raw data over the day's own bounds, and
        its servers' load is that of the hours that start in it."""
        calendar = tenant.settings.calendar
        end = calendar.shift(Period.DAY, day, 1)
        if not whole:
            kept_from = _kept_from(self._clock.now(), tenant.settings.hourly_rollups_kept)
            if day < kept_from:
                return False
            rolled = await self._rollups.find(tenant.id, Period.HOUR, Window(day, end))
        rollup = sum_of(rolled, Period.DAY, day)
        if not calendar.on_the_hour(day):
            if day < events_kept_from:
                return False
            activity = await self._source.activity(tenant.id, day, end, tenant.settings.dimensions)
            rollup = replace(rollup, activity=activity)
        await self._rollups.replace(tenant.id, rollup)
        return True


@dataclass(frozen=True)
class _TenantRun:
    hours: int
    days: int
    funnel_days: int
    resume_from: datetime  # where the tenant's next run starts


def _resume(now: datetime, active: datetime | None, oldest: datetime) -> datetime:
    """Where a run resumes, for sessions still active since `active` (None: none): never after
    now, nor before the oldest hour a run may recompute (an active session may be far older,
    even older than date arithmetic allows), less LATE_DATA."""
    return hour_of(min(now, max(active or now, oldest)) - LATE_DATA)


def _events_kept_from(now: datetime, settings: TenantSettings) -> datetime:
    """The first hour none of whose events retention can have deleted: by their own retention,
    or with their sessions."""
    kept_from = _kept_from(now, timedelta(days=settings.event_retention_days))
    if settings.sessions_kept is None:
        return kept_from
    return max(kept_from, _kept_from(now, settings.sessions_kept))


def _kept_from(now: datetime, kept: timedelta) -> datetime:
    """The first hour none of whose data kept for `kept` can have been deleted."""
    kept_from = now - kept + RETENTION_MARGIN
    start = hour_of(kept_from)
    return start if start == kept_from else start + HOUR


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
