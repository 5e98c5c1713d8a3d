"""Hostile review of funnels and of free trials and plans, through their use cases, on every
store: limits under retention and racing retries, funnel rollups against late data and backdated
starts, and days of a time zone with a clock change."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from application.data_rights.sweeps import delete
from application.events.ingest_events import IngestEventsCommand
from application.funnels.report_funnel import ReportFunnelQuery
from application.ports import Window
from application.retention.apply_retention import ApplyRetentionCommand
from application.rollups.roll_up_usage import RollUpUsageCommand
from application.sessions.record_exit import RecordExitCommand
from application.sessions.start_session import StartedSession, StartSessionCommand
from domain.calendar import HOUR, Calendar, Period
from domain.events import Event
from domain.funnels import Funnel, FunnelFigures, Stage, StageMatch
from domain.plans import Plan, PlanLimits, TrialExhausted
from domain.session import Exit, Session, SessionRequest, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, SHUT, T0, stored_session, wired
from tests.contract.races import Race
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

PRACTICE = frozenset({"practice", "mock_exam"})
# A start that has not answered in this long never will (each attempt is a few round trips).
START_TIMEOUT_SECONDS = 10.0


async def with_plan(storage: Any, tenant: Tenant, limit: int, **settings: Any) -> Tenant:
    """The tenant on a default plan of `limit` practice sessions per resource, with settings."""
    limits = PlanLimits(sessions_per_resource=limit, session_kinds=PRACTICE)
    await storage.plans.put(tenant.id, Plan("free", default=True, limits=limits))
    if settings:
        tenant = await storage.tenants.change_settings(tenant.id, lambda s: replace(s, **settings))
    return tenant


async def start(
    storage: Any, tenant: Tenant, now: datetime, session_id: str | None = None
) -> StartedSession:
    """Ana's practice session on pdf-1, started through the use case at `now`."""
    request = SessionRequest(kind="practice", resource_id="pdf-1", subject_id="ana")
    command = StartSessionCommand(tenant.id, request, session_id, settings=tenant.settings)
    with anyio.fail_after(START_TIMEOUT_SECONDS):
        return await wired(storage, FakeClock(now)).use_cases().start_session()(command)


async def the_first_of_two_ended(storage: Any, tenant: Tenant) -> Session:
    """Ana started two practice sessions on pdf-1 and ended the first, the second still open:
    the first."""
    first = await start(storage, tenant, T0)
    await start(storage, tenant, T0 + timedelta(minutes=10))
    await storage.sessions.close(
        tenant.id, first.session.id, Exit(T0 + timedelta(minutes=5)), frozenset(), NOW, SHUT
    )
    return first.session


# --- limits --------------------------------------------------------------------------------------


async def test_a_limited_start_answers_after_an_older_trial_session_was_deleted(
    storage: Any, tenant: Tenant
) -> None:
    """Of a limit of 3, two sessions were started; the ended one is deleted (retention did so,
    before it kept what a limit counts). A third start is admitted whether the store counts what
    it still holds (1) or every start (2). Found by the review: on MongoDB the start looped for
    good, retrying the slot (n=1) the surviving session holds."""
    tenant = await with_plan(storage, tenant, 3)
    first = await the_first_of_two_ended(storage, tenant)
    assert (await delete(storage.erasure, tenant.id, [first.id])).sessions == 1

    third = await start(storage, tenant, T0 + timedelta(days=40))

    assert third.created
    assert await storage.sessions.get(tenant.id, third.session.id) is not None


async def test_retention_of_ended_sessions_does_not_give_a_trial_back(
    storage: Any, tenant: Tenant
) -> None:
    """Retention (30 days of sessions), 40 days later, keeps the ended one: the limit counts it."""
    tenant = await with_plan(storage, tenant, 2, session_retention_days=30)
    await the_first_of_two_ended(storage, tenant)
    later = T0 + timedelta(days=40)
    retention = wired(storage, FakeClock(later)).jobs().apply_retention()

    deleted = await retention(ApplyRetentionCommand(tenant.name))

    assert deleted.sessions == 0 and not deleted.failures
    with pytest.raises(TrialExhausted):
        await start(storage, tenant, later)


async def test_racing_retries_of_the_start_that_takes_the_last_slot_are_replays_of_it(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """A client's start for the last trial slot, retried by its network layer while the first
    is still under way: every copy answers the one session, none is refused, none counted as a
    refusal, and one slot is used."""
    tenant = await with_plan(storage, tenant, 2)
    await start(storage, tenant, T0)
    session_id = "0b6f4c8e-2d0e-4c43-9d57-6a3c1f0e9a11"

    def retry(s: Any) -> Any:
        return start(s, tenant, T0 + timedelta(minutes=1), session_id)

    outcomes = await race(*(retry for _ in range(6)), return_exceptions=True)

    assert [type(o).__name__ for o in outcomes if isinstance(o, BaseException)] == []
    assert {o.session.id for o in outcomes} == {session_id}
    assert sum(o.created for o in outcomes) == 1
    assert await storage.sessions.count_started(tenant.id, "ana", "pdf-1", PRACTICE) == 2
    refusals = await storage.refused_starts.tally(tenant.id, T0.date(), T0.date())
    assert (sum(refusals.starts.values()), refusals.subjects_exhausted) == (0, 0)


# --- funnels: rollups against late data ----------------------------------------------------------

TWO_STAGES = Funnel(
    "photo",
    "kiosk",
    (
        Stage("frame", StageMatch("screen_enter", label="frame")),
        Stage("capture", StageMatch("capture")),
    ),
)
DAY = Calendar().bucket(Period.DAY, T0)  # 2026-11-24 UTC, T0 at its noon
TWO_DAYS_LATER = DAY.start + timedelta(days=2)


async def roll_up(storage: Any, tenant: Tenant, now: datetime, since: datetime | None) -> None:
    run = (
        await wired(storage, FakeClock(now))
        .jobs()
        .roll_up_usage()(RollUpUsageCommand(tenant.name, since=since))
    )
    assert not run.failures


async def funnel_report(
    storage: Any, tenant: Tenant, start: datetime, end: datetime, now: datetime
) -> FunnelFigures:
    query = ReportFunnelQuery(tenant.id, "photo", start, end, settings=tenant.settings)
    return await wired(storage, FakeClock(now)).use_cases().report_funnel()(query)


def reached(figures: FunnelFigures) -> tuple[int, list[int], dict[str, int]]:
    statuses = {k: n for k, n in figures.exit_statuses.items() if n}
    return figures.sessions, [s.reached for s in figures.stages], statuses


async def test_a_late_event_after_midnight_reaches_the_funnel_of_its_sessions_start_day(
    storage: Any, tenant: Tenant
) -> None:
    """A kiosk session from 23:50 to 00:20 exits, and its capture (00:10) is flushed hours
    later, after both days were rolled up for good: well within the late-data window. Found
    by the review: the rollups went back to the event's hour, not to its session's start."""
    await storage.funnels.put(tenant.id, TWO_STAGES)
    session = await stored_session(
        storage, tenant, 11 * 60 + 50, kind="kiosk", subject_id=None, client_key="booth-1"
    )  # 23:50 on T0's day
    frame = Event(session.id, 1, "screen_enter", DAY.end - timedelta(minutes=9), label="frame")
    await storage.events.append(tenant.id, [(0, frame)], NOW, OPEN)
    left = DAY.end + timedelta(minutes=20)
    await storage.sessions.close(tenant.id, session.id, Exit(left), frozenset(), NOW, SHUT)
    await roll_up(storage, tenant, TWO_DAYS_LATER + timedelta(hours=2), DAY.start)
    window = (DAY.start, DAY.end + timedelta(days=2))

    capture = Event(session.id, 2, "capture", DAY.end + timedelta(minutes=10))
    flushed_at = TWO_DAYS_LATER + timedelta(hours=3)
    ingest = wired(storage, FakeClock(flushed_at)).use_cases().ingest_events()
    outcome = await ingest(IngestEventsCommand(tenant, [capture]))
    assert outcome.inserted == 1
    await roll_up(storage, tenant, flushed_at + timedelta(hours=1), None)

    figures = await funnel_report(storage, tenant, *window, flushed_at + timedelta(hours=1))
    assert reached(figures) == (1, [1, 1], {"completed": 1})


async def test_a_session_started_late_into_a_day_rolled_up_for_good_counts_in_its_funnel(
    storage: Any, tenant: Tenant
) -> None:
    """A kiosk back online sends, two days late, the start and the exit of a session of T0's
    afternoon that reached no stage (the customer walked away): it is a session of that day.
    Found by the review: neither the start nor the exit asked the rollups to go back to it."""
    await storage.funnels.put(tenant.id, TWO_STAGES)
    await roll_up(storage, tenant, TWO_DAYS_LATER + timedelta(hours=2), DAY.start)
    back_online = TWO_DAYS_LATER + timedelta(hours=3)
    use_cases = wired(storage, FakeClock(back_online)).use_cases()
    request = SessionRequest(
        kind="kiosk", resource_id="booth-1", client_key="k-1", started_at=T0 + timedelta(hours=3)
    )
    started = await use_cases.start_session()(StartSessionCommand(tenant.id, request))
    walked_away = T0 + timedelta(hours=3, minutes=2)
    await use_cases.record_exit()(
        RecordExitCommand(tenant.id, started.session.id, walked_away, "abandoned")
    )
    await roll_up(storage, tenant, back_online + timedelta(hours=1), None)

    figures = await funnel_report(
        storage, tenant, DAY.start, DAY.end + timedelta(days=2), back_online + timedelta(hours=1)
    )
    assert reached(figures) == (1, [0, 0], {"abandoned": 1})


async def a_session_of_the_day_before_sent_late(storage: Any, tenant: Tenant) -> datetime:
    """A kiosk back online two days late sends its session of the last hour before T0's day (the
    tenant was created on T0), which ended as that day began; returns when it came."""
    back_online = TWO_DAYS_LATER + timedelta(hours=3)
    use_cases = wired(storage, FakeClock(back_online)).use_cases()
    request = SessionRequest(
        kind="kiosk", resource_id="booth-1", client_key="k-1", started_at=DAY.start - HOUR
    )
    started = await use_cases.start_session()(StartSessionCommand(tenant.id, request))
    await use_cases.record_exit()(RecordExitCommand(tenant.id, started.session.id, DAY.start))
    return back_online


async def test_a_session_sent_late_into_a_day_before_the_tenant_was_created_counts_in_its_funnel(
    storage: Any, tenant: Tenant
) -> None:
    """The same, for a day before the tenant was created (T0), which an operator rolled up with
    `rollup --since` (data loaded from elsewhere). Found by the live run: the server's runs
    rolled funnels up only from the tenant's creation, not from where the session rewound
    them, so the day stayed as the operator's run left it."""
    await storage.funnels.put(tenant.id, TWO_STAGES)
    day_before = DAY.start - timedelta(days=1)
    await roll_up(storage, tenant, TWO_DAYS_LATER + timedelta(hours=2), day_before)
    back_online = await a_session_of_the_day_before_sent_late(storage, tenant)
    await roll_up(storage, tenant, back_online + timedelta(hours=1), None)

    figures = await funnel_report(
        storage, tenant, day_before, DAY.start, back_online + timedelta(hours=1)
    )
    assert reached(figures) == (1, [0, 0], {"completed": 1})


async def test_a_session_older_than_the_tenant_sent_before_its_first_rollup_run_is_counted(
    storage: Any, tenant: Tenant
) -> None:
    """The same before any run: data loaded from elsewhere, older than the tenant, reaches the
    server before its rollup job first runs. Found by the live run: a rewind of a tenant never
    rolled up did nothing, and the first run started at the tenant's creation, so the session
    was never counted, in its hour or its funnel day."""
    await storage.funnels.put(tenant.id, TWO_STAGES)
    back_online = await a_session_of_the_day_before_sent_late(storage, tenant)
    await roll_up(storage, tenant, back_online + timedelta(hours=1), None)

    hour = Window(DAY.start - HOUR, DAY.start)
    (rolled,) = await storage.rollups.find(tenant.id, Period.HOUR, hour, kind="kiosk")
    assert [a.sessions_started for a in rolled.activity] == [1]
    day_before = DAY.start - timedelta(days=1)
    figures = await funnel_report(
        storage, tenant, day_before, DAY.start, back_online + timedelta(hours=1)
    )
    assert reached(figures) == (1, [0, 0], {"completed": 1})


# --- funnels: a day of 25 hours in the tenant's zone ---------------------------------------------

NEW_YORK = "America/New_York"
# 1 November 2026 in New York: 25 hours, from 04:00 UTC to 05:00 UTC the next day.
LONG_DAY = Calendar(NEW_YORK).bucket(Period.DAY, datetime(2026, 11, 1, 12, tzinfo=UTC))


async def test_a_new_york_funnel_day_of_25_hours_reads_alike_from_events_and_rollups(
    storage: Any, tenant: Tenant
) -> None:
    """Sessions just before, inside (first and last local hour) and just after New York's
    25-hour day, each reaching the frame and some the capture: each day's report is the same
    before and after the days are rolled up for good, and the long day holds its own four."""
    assert LONG_DAY.end - LONG_DAY.start == timedelta(hours=25)
    tenant = await storage.tenants.change_settings(
        tenant.id, lambda s: replace(s, time_zone=NEW_YORK)
    )
    await storage.funnels.put(tenant.id, TWO_STAGES)
    starts = {
        "before": LONG_DAY.start - timedelta(minutes=30),
        "first": LONG_DAY.start + timedelta(minutes=10),
        "repeated": LONG_DAY.start + timedelta(hours=2, minutes=5),  # 01:05 EST, the 2nd one
        "last": LONG_DAY.end - timedelta(minutes=20),
        "after": LONG_DAY.end + timedelta(minutes=10),
        "unfinished": LONG_DAY.start + timedelta(hours=5),
    }
    for n, (name, started) in enumerate(starts.items()):
        minutes = (started - T0).total_seconds() / 60
        session = await stored_session(
            storage, tenant, minutes, kind="kiosk", subject_id=None, client_key=name
        )
        touches = [Event(session.id, 1, "screen_enter", started, label="frame")]
        if n % 2 == 1:  # first, last, unfinished: captured 30 s later
            touches.append(Event(session.id, 2, "capture", started + timedelta(seconds=30)))
        await storage.events.append(tenant.id, list(enumerate(touches)), NOW, OPEN)
        status = SessionStatus.ABANDONED if name == "unfinished" else SessionStatus.COMPLETED
        ended = Exit(started + timedelta(minutes=3), status)
        await storage.sessions.close(tenant.id, session.id, ended, frozenset(), NOW, SHUT)
    days = [
        (LONG_DAY.start - timedelta(days=1), LONG_DAY.start),
        (LONG_DAY.start, LONG_DAY.end),
        (LONG_DAY.end, LONG_DAY.end + timedelta(days=1)),
    ]
    now = LONG_DAY.end + timedelta(days=3)
    from_events = [reached(await funnel_report(storage, tenant, *d, now)) for d in days]

    await roll_up(storage, tenant, now, LONG_DAY.start - timedelta(days=2))
    fingerprint = TWO_STAGES.fingerprint(())
    calendar = tenant.settings.calendar
    stored = await storage.funnel_days.stored(
        tenant.id, "photo", fingerprint, [calendar.bucket(Period.DAY, start) for start, _ in days]
    )
    from_rollups = [reached(await funnel_report(storage, tenant, *d, now)) for d in days]

    assert stored == {start: True for start, _ in days}
    assert from_rollups == from_events
    assert from_rollups == [
        (1, [1, 0], {"completed": 1}),
        (4, [4, 3], {"completed": 3, "abandoned": 1}),
        (1, [1, 0], {"completed": 1}),
    ]


# --- funnels: a change of time zone --------------------------------------------------------------

LONDON = "Europe/London"
# 29 March 2026 in London: 23 hours, from 00:00 UTC to 23:00 UTC. The UTC day starts alike.
SHORT_DAY = Calendar(LONDON).bucket(Period.DAY, datetime(2026, 3, 29, 12, tzinfo=UTC))


async def test_a_funnel_day_rolled_up_in_another_zone_is_not_read_for_this_zones_day(
    storage: Any, tenant: Tenant
) -> None:
    """Rolled up in London, where 29 March 2026 is 23 hours long; the tenant moves to UTC,
    whose 29 March starts at the same instant and is 24 hours long: its funnel holds both
    sessions started that UTC day, at 10:00 and at 23:30 (00:30 on the 30th in London). Found
    by the review: the London day was read for the UTC one (a day is now kept with its end)."""
    assert SHORT_DAY.end - SHORT_DAY.start == timedelta(hours=23)
    tenant = await storage.tenants.change_settings(
        tenant.id, lambda s: replace(s, time_zone=LONDON)
    )
    await storage.funnels.put(tenant.id, TWO_STAGES)
    for name, started in (
        ("morning", SHORT_DAY.start + timedelta(hours=10)),
        ("late", SHORT_DAY.end + timedelta(minutes=30)),
    ):
        minutes = (started - T0).total_seconds() / 60
        session = await stored_session(
            storage, tenant, minutes, kind="kiosk", subject_id=None, client_key=name
        )
        frame = Event(session.id, 1, "screen_enter", started, label="frame")
        await storage.events.append(tenant.id, [(0, frame)], NOW, OPEN)
        ended = Exit(started + timedelta(minutes=3))
        await storage.sessions.close(tenant.id, session.id, ended, frozenset(), NOW, SHUT)
    now = SHORT_DAY.start + timedelta(days=4)
    await roll_up(storage, tenant, now, SHORT_DAY.start - timedelta(days=1))

    tenant = await storage.tenants.change_settings(tenant.id, lambda s: replace(s, time_zone="UTC"))
    utc_day = (SHORT_DAY.start, SHORT_DAY.start + timedelta(days=1))

    figures = await funnel_report(storage, tenant, *utc_day, now)
    assert reached(figures) == (2, [2, 0], {"completed": 2})
