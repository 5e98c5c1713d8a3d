"""Hostile review of the usage rollups (RollUpUsage, its leases and rewinds, the usage sources,
the usage report) on every store: late data racing a run, leases lost mid-run, rewinds racing
releases, retention and deletions under recomputed hours, clock changes in the tenant's zone.

A test that passes documents an attack that held, or a defect found and fixed since (its
docstring says "Found"); an xfail(strict) one, a defect still open."""

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.data_rights.delete_resource import DeleteResourceCommand
from application.events.ingest_events import IngestEventsCommand
from application.ports import Window
from application.reports.report_usage import ReportUsageQuery
from application.retention.apply_retention import ApplyRetentionCommand
from application.rollups.roll_up_usage import RollupRun, RollUpUsageCommand
from application.sessions.record_exit import RecordExitCommand
from application.telemetry.record_errors import RecordErrorsCommand
from application.telemetry.record_sales import RecordSalesCommand
from domain.calendar import Calendar, Period, hour_of
from domain.events import Event
from domain.rollups import Rollup
from domain.session import Exit, Session, SessionStatus
from domain.snapshots import Snapshot
from domain.tenants import Tenant, TenantSettings
from tests.contract.builders import NOW, OPEN, SHUT, T0, add_tenant, at, stored_session, wired
from tests.contract.races import Call, Proxy, Race
from tests.contract.telemetry_builders import a_sale, an_error
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

HOUR = timedelta(hours=1)
HOUR0 = hour_of(T0)  # 12:00, the tenant's first hour


class PausedAfterFirstActivity(Proxy):
    """The usage source: its first `activity` call reads the hour, then tells the test
    (`reached`) and waits for it (`go`) before handing back what it read."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.reached, self.go = asyncio.Event(), asyncio.Event()

    async def activity(self, *args: Any) -> Any:
        found = await self._inner.activity(*args)
        if not self.reached.is_set():
            self.reached.set()
            await asyncio.wait_for(self.go.wait(), 30)
        return found


def run_at(storage: Any, minutes: float, **ports: Any) -> Any:
    return wired(storage, FakeClock(at(minutes)), **ports).jobs().roll_up_usage()


async def a_run_paused_in_hour_0(
    storage: Any, tenant: Tenant
) -> tuple["asyncio.Task[RollupRun]", PausedAfterFirstActivity]:
    """A run at minute 300 reaching back to the tenant's start, paused once it has read 12:00
    (its lease runs until 310): the run, and its source to let it go on."""
    source = PausedAfterFirstActivity(storage.usage_source)
    running = asyncio.create_task(
        run_at(storage, 300, usage_source=source)(RollUpUsageCommand(tenant.name, since=T0))
    )
    await asyncio.wait_for(source.reached.wait(), 30)
    return running, source


async def closed_session(
    storage: Any, tenant: Tenant, start: float, end: float, **fields: Any
) -> Session:
    session = await stored_session(storage, tenant, start, **fields)
    await storage.sessions.close(tenant.id, session.id, Exit(at(end)), frozenset(), NOW, SHUT)
    return session


async def late_event(storage: Any, tenant: Tenant, session: Session, n: int, now: float) -> None:
    """The session's event number `n`, at minute `n`, ingested at minute `now`."""
    ingest = wired(storage, FakeClock(at(now))).use_cases().ingest_events()
    outcome = await ingest(IngestEventsCommand(tenant, [Event(session.id, n, "tap", at(n))]))
    assert outcome.inserted == 1, outcome


async def hour(storage: Any, tenant: Tenant, start: datetime) -> Rollup:
    found: list[Rollup] = await storage.rollups.find(
        tenant.id, Period.HOUR, Window(start, start + HOUR)
    )
    assert len(found) == 1, found
    return found[0]


def events_in(rollup: Rollup) -> int:
    return sum(a.events for a in rollup.activity)


def started_in(rollup: Rollup) -> int:
    return sum(a.sessions_started for a in rollup.activity)


# 1. Late data while a run is computing that very hour


async def test_a_late_event_stored_while_a_run_computes_its_hour_is_rolled_up_next_run(
    storage: Any, tenant: Tenant
) -> None:
    """Attack held: a run (since the tenant's start) has read hour 12:00 when a late event of
    that hour arrives (its rewind recorded while the run holds the lease); the run then saves
    the stale hour and releases with its resume point at 16:00. The rewind is kept apart from
    the resume point, so the next run goes back to 12:00 and counts the event."""
    session = await closed_session(storage, tenant, 10, 20)
    await run_at(storage, 200)(RollUpUsageCommand(tenant.name))
    running, source = await a_run_paused_in_hour_0(storage, tenant)
    await late_event(storage, tenant, session, 15, now=301)
    source.go.set()
    first: RollupRun = await running
    stale = await hour(storage, tenant, HOUR0)
    await run_at(storage, 320)(RollUpUsageCommand(tenant.name))

    assert first.failures == [] and events_in(stale) == 0
    assert events_in(await hour(storage, tenant, HOUR0)) == 1
    [day] = await storage.rollups.find(tenant.id, Period.DAY, Window())
    assert sum(a.events for a in day.activity) == 1


async def test_a_runner_that_lost_its_lease_mid_hour_does_not_overwrite_the_new_holders_hour(
    storage: Any, tenant: Tenant
) -> None:
    """Runner A (at minute 300, lease until 310) has read hour 12:00 and stalls (a GC pause, a
    slow statement) past its lease. A late event of 12:00 arrives and rewinds the tenant; runner
    B takes the expired lease at 311, consumes the rewind, recomputes 12:00 with the event and
    releases at 16:00. Then A wakes, writes its stale 12:00 over B's, and only then finds, on
    renewing, that it lost the lease. Nothing rewound 12:00 again: the hour missed the event
    for good, and the next run (resuming at 16:00) rebuilt the day from the stored hours, so
    the day and the report lost it too. Found on every store; a runner that finds it lost its
    lease now rewinds to the first hour it wrote."""
    session = await closed_session(storage, tenant, 10, 20)
    await run_at(storage, 200)(RollUpUsageCommand(tenant.name))
    a, source = await a_run_paused_in_hour_0(storage, tenant)
    await late_event(storage, tenant, session, 15, now=305)
    b = await run_at(storage, 311)(RollUpUsageCommand(tenant.name))
    source.go.set()
    lost: RollupRun = await a
    await run_at(storage, 320)(RollUpUsageCommand(tenant.name))

    assert (b.tenants, len(lost.failures)) == (1, 1)  # A found out on renewing
    assert events_in(await hour(storage, tenant, HOUR0)) == 1
    [day] = await storage.rollups.find(tenant.id, Period.DAY, Window())
    assert sum(a.events for a in day.activity) == 1


# 2. The lease's rewinds racing its release and its acquisition


async def test_a_rewind_racing_a_release_to_a_later_resume_point_is_kept(
    storage: Any, race: Race
) -> None:
    """Attack held: for six tenants, the holder releases with its resume point at minute 300
    while late data rewinds to minute 60, at once: the next acquisition resumes at 60."""
    tenants = [await add_tenant(storage, f"t-{n}") for n in range(6)]
    for t in tenants:
        assert await storage.rollup_leases.acquire(t.id, "first", at(0), at(10))
        await storage.rollup_leases.release(t.id, "first", at(30), None)
        assert await storage.rollup_leases.acquire(t.id, "runner", at(0), at(10))

    def release(t: Tenant) -> Call:
        return lambda s: s.rollup_leases.release(t.id, "runner", at(300), None)

    def rewind(t: Tenant) -> Call:
        return lambda s: s.rollup_leases.rewind(t.id, at(60))

    await race(*(call(t) for t in tenants for call in (release, rewind)))

    for t in tenants:
        lease = await storage.rollup_leases.acquire(t.id, "next", at(20), at(30))
        assert lease is not None and lease.resume_from == at(60)


async def test_a_rewind_racing_an_acquisition_is_seen_by_that_run_or_the_next(
    storage: Any, race: Race
) -> None:
    """Attack held (MongoDB takes the lease, then consumes the rewind it read, in two writes):
    six tenants rewound to minute 120 are acquired while an earlier rewind (minute 60) lands.
    Either the run resumes by 60, or, once it released at 300, the next one does; the earlier
    rewind is never lost."""
    tenants = [await add_tenant(storage, f"t-{n}") for n in range(6)]
    for t in tenants:
        assert await storage.rollup_leases.acquire(t.id, "first", at(0), at(10))
        await storage.rollup_leases.release(t.id, "first", at(300), None)
        await storage.rollup_leases.rewind(t.id, at(120))

    def acquire(t: Tenant) -> Call:
        return lambda s: s.rollup_leases.acquire(t.id, "runner", at(20), at(30))

    def rewind(t: Tenant) -> Call:
        return lambda s: s.rollup_leases.rewind(t.id, at(60))

    outcomes = await race(*(call(t) for t in tenants for call in (acquire, rewind)))

    for t, lease in zip(tenants, outcomes[::2], strict=True):
        assert lease is not None and lease.resume_from <= at(120)
        await storage.rollup_leases.release(t.id, "runner", at(300), None)
        after = await storage.rollup_leases.acquire(t.id, "next", at(40), at(50))
        assert after is not None
        assert min(lease.resume_from, after.resume_from) == at(60)
        if lease.resume_from == at(60):
            assert after.resume_from == at(300)  # consumed once


# 3. Hours recomputed after retention or a deletion took some of their sources


async def test_hours_whose_sessions_retention_deleted_keep_what_they_had(storage: Any) -> None:
    """README: "however far back --since reaches, a bucket is recomputed only while retention
    has deleted none of what it is made of". The run's oldest hour comes from the event,
    snapshot and hourly retentions only; session retention deletes ended sessions with their
    events (here after 1 day, late data accepted for an hour). 2 days on, a run reaching back
    (`--since`, or any change of time zone or dimensions, which recuts from the tenant's
    creation) rebuilt 12:00 and the day from what is left: the session counted there was gone
    from the rollups and the reports. Found on every store; now session retention bounds the
    hours a run recomputes, as event retention does."""
    tenant = await add_tenant(
        storage, "kept-1", session_retention_days=1, late_data_window_seconds=3600
    )
    session = await closed_session(storage, tenant, 10, 20)
    await storage.events.append(tenant.id, [(0, Event(session.id, 1, "tap", at(15)))], NOW, OPEN)
    await run_at(storage, 200)(RollUpUsageCommand(tenant.name))
    before = await hour(storage, tenant, HOUR0)
    later = 2 * 24 * 60
    deleted = (
        await wired(storage, FakeClock(at(later))).jobs().apply_retention()(ApplyRetentionCommand())
    )
    await run_at(storage, later)(RollUpUsageCommand(tenant.name, since=T0))

    assert deleted.sessions == 1 and (started_in(before), events_in(before)) == (1, 1)
    after = await hour(storage, tenant, HOUR0)
    assert (started_in(after), events_in(after)) == (1, 1)
    [day] = await storage.rollups.find(tenant.id, Period.DAY, Window(HOUR0 - 12 * HOUR, HOUR0))
    assert sum(a.sessions_started for a in day.activity) == 1


async def test_a_deleted_resource_whose_session_reported_a_device_error_rolls_up_again(
    storage: Any, tenant: Tenant, storage_url: str, request: pytest.FixtureRequest
) -> None:
    """DELETE /v1/resources/{id} removes the resource's sessions and events, keeps device
    errors (error retention is their own), and rewinds the tenant's rollups to its first
    session. The next run recomputes those hours: the error of a session that is gone must
    simply not count (memory and SQL skip it, by their join). Found on MongoDB: a KeyError
    failed every later run of the tenant."""
    doomed = await closed_session(storage, tenant, 10, 20, resource_id="w-9")
    await closed_session(storage, tenant, 30, 40, resource_id="w-1", subject_id="u2")
    await storage.errors.add(tenant.id, [an_error("crash-1", 15, session_id=doomed.id)])
    await run_at(storage, 200)(RollUpUsageCommand(tenant.name))
    delete = wired(storage, FakeClock(at(300))).use_cases().delete_resource()
    gone = await delete(DeleteResourceCommand(tenant, "w-9"))

    run = await run_at(storage, 310)(RollUpUsageCommand(tenant.name))

    assert gone.sessions == 1
    assert run.failures == [] and run.hours > 0
    rolled = await hour(storage, tenant, HOUR0)
    assert [(a.resource_id, a.sessions_started, a.errors) for a in rolled.activity] == [
        ("w-1", 1, 0)
    ]


async def test_a_late_event_older_than_hourly_retention_reaches_its_day(storage: Any) -> None:
    """Hourly rollups kept 1 day, events accepted 7 days late (the defaults of the late-data
    window). 26 hours on, a late event of 12:15 arrives: its rewind makes the next run
    recompute 12:00 onwards from the raw data (all kept), but that run starts mid-day, and the
    day's earlier hours were gone from the hourly rollups, so the day "kept what it had". The
    hour counted the event; the day (and the day, week and month reports) never did. Found on
    every store; hourly rollups now stay at least a day past the late-data window."""
    tenant = await add_tenant(storage, "short-hours", hourly_rollup_retention_days=1)
    session = await closed_session(storage, tenant, 10, 20)
    await run_at(storage, 200)(RollUpUsageCommand(tenant.name))
    later = 26 * 60
    await wired(storage, FakeClock(at(later))).jobs().apply_retention()(ApplyRetentionCommand())
    await late_event(storage, tenant, session, 15, now=later)

    await run_at(storage, later + 10)(RollUpUsageCommand(tenant.name))

    assert events_in(await hour(storage, tenant, HOUR0)) == 1
    day = await storage.rollups.find(tenant.id, Period.DAY, Window(HOUR0, HOUR0 + HOUR))
    assert day == []  # the UTC day starts at midnight
    [day] = await storage.rollups.find(tenant.id, Period.DAY, Window(HOUR0 - 12 * HOUR, HOUR0))
    assert sum(a.events for a in day.activity) == 1


# 4. Sessions ended by the reaper, then by a late exit


async def test_a_late_exit_correcting_a_reaped_session_rolls_up_its_hours_again(
    storage: Any, tenant: Tenant
) -> None:
    """Attack held: the reaper ended the session a minute in (timed out); its hours were rolled
    up. Two hours later the client's own exit (at 14:30, with usage) corrects it: RecordExit
    rewinds to the session's start, and the next run moves the end, its status, its usage and
    its seconds into the right hours; the day is the sum of them."""

    session = await stored_session(storage, tenant, 0)
    reaped = Exit(at=at(1), status=SessionStatus.TIMED_OUT)
    await storage.sessions.close(tenant.id, session.id, reaped, frozenset(), NOW, SHUT)
    await run_at(storage, 200)(RollUpUsageCommand(tenant.name))
    exit = wired(storage, FakeClock(at(300))).use_cases().record_exit()
    await exit(RecordExitCommand(tenant.id, session.id, at=at(150), usage={"pages": 4}))

    await run_at(storage, 310)(RollUpUsageCommand(tenant.name))

    hours = await storage.rollups.find(tenant.id, Period.HOUR, Window(HOUR0, HOUR0 + 3 * HOUR))
    assert [sum(a.active_seconds for a in h.activity) for h in hours] == [3599.877, 3600, 1800.123]
    assert [sum(a.sessions_ended for a in h.activity) for h in hours] == [0, 0, 1]
    [day] = await storage.rollups.find(tenant.id, Period.DAY, Window())
    [activity] = day.activity
    assert activity.ended_statuses == {"completed": 1} and activity.meters == {"pages": 4}
    assert activity.active_seconds == 150 * 60


# 5. Clock changes in the tenant's zone, and the report


def minutes_to(instant: datetime) -> float:
    return (instant - T0).total_seconds() / 60


async def test_a_session_across_new_yorks_25_hour_day_is_summed_into_its_local_days(
    storage: Any,
) -> None:
    """Attack held: America/New_York falls back on 1 November 2026 (a 25-hour day). A session
    from 23:00 on 31 October to 01:00 on 2 November (local) is rolled up from 31 October on:
    each local day is the sum of its UTC hours, 1 November holds 25 hours (90,000 s), and the
    day and week reports label and bound them in local time."""

    zone = "America/New_York"
    created = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
    tenant = Tenant("ny-tenant-0000", "ny", created, TenantSettings(time_zone=zone))
    await storage.tenants.add(tenant)
    start, end = datetime(2026, 11, 1, 3, tzinfo=UTC), datetime(2026, 11, 2, 6, tzinfo=UTC)
    session = await stored_session(storage, tenant, minutes_to(start))
    await storage.sessions.close(
        tenant.id, session.id, Exit(at(minutes_to(end))), frozenset(), NOW, SHUT
    )
    now = datetime(2026, 11, 2, 7, tzinfo=UTC)
    await run_at(storage, minutes_to(now))(RollUpUsageCommand(tenant.name))

    days = await storage.rollups.find(tenant.id, Period.DAY, Window())
    hours = await storage.rollups.find(tenant.id, Period.HOUR, Window())
    calendar = Calendar(zone)
    for day in days:
        own = [h for h in hours if calendar.start_of(Period.DAY, h.start) == day.start]
        assert sum(a.active_seconds for h in own for a in h.activity) == sum(
            a.active_seconds for a in day.activity
        )
    report = wired(storage, FakeClock(now)).use_cases().report_usage()
    saturday = datetime(2026, 10, 31, 4, tzinfo=UTC)  # midnight, EDT
    by_day = await report(
        ReportUsageQuery(tenant.id, "day", saturday, now, settings=tenant.settings)
    )
    assert [
        (f.bucket.label, f.bucket.end - f.bucket.start, f.activity.active_seconds) for f in by_day
    ] == [
        ("2026-10-31", 24 * HOUR, 3600.0),
        ("2026-11-01", 25 * HOUR, 90_000.0),
        ("2026-11-02", 24 * HOUR, 3600.0),
    ]
    monday = datetime(2026, 10, 26, 4, tzinfo=UTC)  # midnight, EDT
    by_week = await report(
        ReportUsageQuery(tenant.id, "week", monday, now, settings=tenant.settings)
    )
    assert [(f.bucket.label, f.activity.active_seconds) for f in by_week] == [
        ("2026-W44", 93_600.0),
        ("2026-W45", 3600.0),
    ]


async def test_the_report_of_a_window_partly_rolled_up_gives_the_rolled_up_buckets_only(
    storage: Any, tenant: Tenant
) -> None:
    """Attack held, as documented ("figures are as of the last rollup run"): a session after
    the last run is in no bucket, and the hours not rolled up yet are absent from the report
    (not zeros that would pass for no usage); the next run fills them in."""
    await closed_session(storage, tenant, 10, 20)
    await run_at(storage, 70)(RollUpUsageCommand(tenant.name))  # up to 13:00
    await closed_session(storage, tenant, 190, 200, subject_id="u2")  # 15:10
    report = wired(storage, FakeClock(at(300))).use_cases().report_usage()
    query = ReportUsageQuery(tenant.id, "hour", HOUR0, HOUR0 + 5 * HOUR)

    before = await report(query)
    await run_at(storage, 300)(RollUpUsageCommand(tenant.name))
    after = await report(query)

    assert [(f.bucket.label[-6:], f.activity.sessions_started) for f in before] == [
        ("12:00Z", 1),
        ("13:00Z", 0),
    ]
    assert [f.activity.sessions_started for f in after] == [1, 0, 0, 1, 0]


# 6. Late data that rewinds nothing


async def test_errors_and_sales_a_kiosk_flushes_late_are_counted_in_their_hours(
    storage: Any, tenant: Tenant
) -> None:
    """The rollups count, per session's kind and resource, the device errors and the sales of
    each hour (Activity.errors, sales, sales_net: the usage report and the daily summary read
    them). RecordErrors takes errors dated any time back ("a kiosk that was offline flushes its
    buffer"), RecordSales sales likewise; unlike events, exits and starts, neither asked
    RollupRewinds to go back. Here both arrive at 15:30 for 12:15, after the 14:00 run
    (resuming at 13:00); the next run started at 14:00 and 12:00 never counted them. Found on
    every store; a new error or sale of a session now rewinds to its hour."""

    session = await closed_session(storage, tenant, 10, 20)
    await run_at(storage, 120)(RollUpUsageCommand(tenant.name))
    cases = wired(storage, FakeClock(at(210))).use_cases()
    errors = await cases.record_errors()(
        RecordErrorsCommand(tenant.id, [an_error("crash-1", 15, session_id=session.id)])
    )
    sales = await cases.record_sales()(
        RecordSalesCommand(tenant.id, [a_sale("sale-1", session.id, 15)])
    )

    await run_at(storage, 220)(RollUpUsageCommand(tenant.name))

    assert (errors.inserted, sales.inserted) == (1, 1)
    [activity] = (await hour(storage, tenant, HOUR0)).activity
    assert (activity.errors, activity.sales) == (1, {"KRW": 1})


async def test_a_rollup_since_a_later_hour_keeps_the_rewind_pending_before_it(
    storage: Any, tenant: Tenant
) -> None:
    """A late event of 12:15 rewinds the tenant to 12:00. Before the server's next run, an
    operator runs `sessionmeter rollup --since 15:00` (to take in snapshots imported for that
    hour). Its acquisition consumes the rewind (resume_from = 12:00), but the run starts at
    `since` (asked = since or resume_from) and released at 16:00: no run ever went back to
    12:00, whose hour and day missed the event. Found on every store; a run now starts at the
    earlier of `since` and its resume point."""
    session = await closed_session(storage, tenant, 10, 20)
    await run_at(storage, 200)(RollUpUsageCommand(tenant.name))
    await late_event(storage, tenant, session, 15, now=290)

    await run_at(storage, 300)(RollUpUsageCommand(tenant.name, since=HOUR0 + 3 * HOUR))
    await run_at(storage, 310)(RollUpUsageCommand(tenant.name))

    assert events_in(await hour(storage, tenant, HOUR0)) == 1


# 7. Boundaries


async def test_sessions_and_events_on_the_hour_count_in_the_hour_they_start(
    storage: Any, tenant: Tenant
) -> None:
    """Attack held: a session from 13:00:00.000 to 14:00:00.000 exactly, an event at 14:00
    exactly and a session that starts and ends at 15:00 exactly: 13:00 has the start and its
    3,600 s, 14:00 the end and the event and no seconds, 15:00 a start and an end of 0 s; the
    same on every store."""
    thirteen = HOUR0 + HOUR
    base = minutes_to(thirteen)
    whole = await closed_session(storage, tenant, base, base + 60)
    await closed_session(storage, tenant, base + 120, base + 120, subject_id="u2")
    await storage.events.append(
        tenant.id, [(0, Event(whole.id, 1, "tap", thirteen + HOUR))], NOW, OPEN
    )
    await run_at(storage, 300)(RollUpUsageCommand(tenant.name))

    hours = await storage.rollups.find(
        tenant.id, Period.HOUR, Window(thirteen, thirteen + 3 * HOUR)
    )
    assert [
        [(a.sessions_started, a.sessions_ended, a.active_seconds, a.events) for a in h.activity]
        for h in hours
    ] == [[(1, 0, 3600.0, 0)], [(0, 1, 0.0, 1)], [(1, 1, 0.0, 0)]]


async def test_a_new_time_zone_recuts_the_days_and_the_report_leaves_the_old_cut_out(
    storage: Any, tenant: Tenant
) -> None:
    """Attack held: the tenant's days were cut in UTC; it moves to Asia/Seoul between runs.
    The next run finds the lease's cut changed and recuts from the tenant's creation; the day
    report (PostgreSQL adds it up in SQL, the others in Python) gives the Seoul days, each the
    sum of its hours, and none of the stored UTC days."""
    await closed_session(storage, tenant, 10, 20)  # 21:10 in Seoul, 24 November
    await closed_session(storage, tenant, 200, 210, subject_id="u2")  # 00:20, 25 November
    await run_at(storage, 300)(RollUpUsageCommand(tenant.name))
    utc_days = await storage.rollups.find(tenant.id, Period.DAY, Window())
    seoul = await storage.tenants.change_settings(
        tenant.id, lambda s: replace(s, time_zone="Asia/Seoul")
    )
    run = await run_at(storage, 310)(RollUpUsageCommand(tenant.name))
    report = wired(storage, FakeClock(at(310))).use_cases().report_usage()
    window = (at(-24 * 60), at(2 * 24 * 60))
    by_day = await report(ReportUsageQuery(tenant.id, "day", *window, settings=seoul.settings))

    assert [d.start.hour for d in utc_days] == [0] and run.days == 2
    assert [(f.bucket.label, f.activity.sessions_started) for f in by_day] == [
        ("2026-11-24", 1),
        ("2026-11-25", 1),
    ]


async def test_an_hour_with_more_snapshots_than_the_cap_counts_them_all(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RollUpUsage read an hour's snapshots with snapshots.find(..., MAX_SNAPSHOTS_PER_HOUR)
    and summed what came back, with no sign of what was left out: traffic, CPU and users (and
    the cost model fitted on them) dropped what is past the cap. Found on every store; an hour
    with more is now read in halves. The cap is lowered to 3 here (instead of writing 100,001
    snapshots): eight snapshots in 12:00, four of one server whose traffic grows, give the
    figures they give uncapped."""
    await storage.snapshots.add(
        tenant.id,
        [Snapshot(f"lk-{n}", at(10 + n), 20.0, 1, 1, 1_000_000, 2, 1) for n in range(4)]
        + [
            Snapshot("lk-busy", at(20 + 9 * n), 30.0 + n, 1, 1, 10**6 * (n + 1) ** 2, 3 + n, 1)
            for n in range(4)
        ],
    )
    await run_at(storage, 120)(RollUpUsageCommand(tenant.name))
    uncapped = (await hour(storage, tenant, HOUR0)).load

    monkeypatch.setattr("application.rollups.roll_up_usage.MAX_SNAPSHOTS_PER_HOUR", 3)
    await run_at(storage, 121)(RollUpUsageCommand(tenant.name, since=T0))

    assert uncapped.snapshots == 8 and uncapped.traffic_bytes > 0, uncapped
    assert (await hour(storage, tenant, HOUR0)).load == uncapped
