"""A session open for days in the rollups: the server's runs recompute only the hours since the
active session seen least recently was last seen; its start day's funnel stays open (not final)
until it ends, and counts how it ended; an end given before its last sign of life sends the next
run back to it and takes back the time counted active after it."""

from typing import Any

import pytest

from application.ports import Window
from application.rollups.roll_up_usage import RollupRun, RollUpUsageCommand
from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from application.sessions.record_exit import RecordExitCommand
from domain.calendar import Period
from domain.events import Event
from domain.funnels import Funnel, Stage, StageMatch
from domain.rollups import Rollup
from domain.session import Session
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, T0, at, stored_session, wired
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

DAYS = 3 * 24 * 60  # minutes
PHOTO = Funnel(
    "photo",
    "kiosk",
    (
        Stage("frame", StageMatch("screen_enter", label="frame")),
        Stage("capture", StageMatch("capture")),
    ),
)
FIRST_DAY = T0.replace(hour=0, minute=0, second=0, microsecond=0)


async def roll_up(storage: Any, tenant: Tenant, minutes: float) -> RollupRun:
    run: RollupRun = (
        await wired(storage, FakeClock(at(minutes)))
        .jobs()
        .roll_up_usage()(RollUpUsageCommand(tenant.name))
    )
    assert not run.failures, run.failures
    return run


async def a_kiosk_open_three_days(storage: Any, tenant: Tenant) -> Session:
    """Started at minute 10, framed at 11, rolled up then; kept alive for three days by its
    heartbeats, and rolled up as the server does, run after run."""
    await storage.funnels.put(tenant.id, PHOTO)
    session = await stored_session(storage, tenant, 10, kind="kiosk", resource_id="booth-1")
    framed = Event(session.id, 1, "screen_enter", at(11), label="frame")
    await storage.events.append(tenant.id, [(0, framed)], NOW, OPEN)
    await roll_up(storage, tenant, 60)
    await storage.sessions.heartbeat(tenant.id, session.id, at(DAYS))
    await roll_up(storage, tenant, DAYS + 5)
    await storage.sessions.heartbeat(tenant.id, session.id, at(DAYS + 50))
    return session


async def active_seconds(storage: Any, tenant: Tenant) -> float:
    hours: list[Rollup] = await storage.rollups.find(tenant.id, Period.HOUR, Window())
    return sum(a.active_seconds for h in hours for a in h.activity)


async def first_day_statuses(storage: Any, tenant: Tenant) -> dict[str, int]:
    (tally,) = await storage.funnel_days.wholes(tenant.id, PHOTO.name, [FIRST_DAY])
    return dict(tally.statuses)


async def test_a_run_while_a_session_has_been_open_for_days_recomputes_its_last_hours_only(
    storage: Any, tenant: Tenant
) -> None:
    """The session's hours before its last sign of life are final while it goes on: a run
    every few minutes recomputes the hours since (and LATE_DATA), not the three days (the
    benchmark rollup_open_session.py: 12 s a run for a month, against 1 s)."""
    await a_kiosk_open_three_days(storage, tenant)

    run = await roll_up(storage, tenant, DAYS + 55)

    assert run.hours <= 3, run
    assert await active_seconds(storage, tenant) == (DAYS + 50 - 10) * 60
    assert await first_day_statuses(storage, tenant) == {"active": 1}


async def test_a_client_ending_a_session_open_for_days_is_counted_ended_from_its_start(
    storage: Any, tenant: Tenant
) -> None:
    """Ended by its client: its first day's funnel counts it completed, and its hours add up to
    its whole time."""
    session = await a_kiosk_open_three_days(storage, tenant)
    await roll_up(storage, tenant, DAYS + 55)
    use_cases = wired(storage, FakeClock(at(DAYS + 60))).use_cases()
    await use_cases.record_exit()(RecordExitCommand(tenant.id, session.id, at(DAYS + 60)))

    await roll_up(storage, tenant, DAYS + 65)

    assert await first_day_statuses(storage, tenant) == {"completed": 1}
    assert await active_seconds(storage, tenant) == (DAYS + 60 - 10) * 60


async def test_an_end_given_before_the_last_sign_of_life_takes_back_the_time_after_it(
    storage: Any, tenant: Tenant
) -> None:
    """A client may end its session when it says it ended, before its last heartbeat: the time
    between, counted active while it went on, is no longer (a day of it, here)."""
    session = await a_kiosk_open_three_days(storage, tenant)
    await roll_up(storage, tenant, DAYS + 55)
    use_cases = wired(storage, FakeClock(at(DAYS + 60))).use_cases()
    said = at(2 * 24 * 60)
    await use_cases.record_exit()(RecordExitCommand(tenant.id, session.id, said))

    await roll_up(storage, tenant, DAYS + 65)

    assert await active_seconds(storage, tenant) == (2 * 24 * 60 - 10) * 60
    assert await first_day_statuses(storage, tenant) == {"completed": 1}


async def test_the_reaper_ending_a_session_open_for_days_is_counted_timed_out_from_its_start(
    storage: Any, tenant: Tenant
) -> None:
    """Ended by the reaper (at its last sign of life): its first day's funnel counts it timed
    out, and its hours its time until then."""
    await a_kiosk_open_three_days(storage, tenant)
    await roll_up(storage, tenant, DAYS + 55)
    reaper = wired(storage, FakeClock(at(DAYS + 60))).jobs().reap_stale_sessions()
    assert (await reaper(ReapStaleSessionsCommand(tenant.name))).closed == 1

    await roll_up(storage, tenant, DAYS + 65)

    assert await first_day_statuses(storage, tenant) == {"timed_out": 1}
    assert await active_seconds(storage, tenant) == (DAYS + 50 - 10) * 60


async def test_a_session_silent_for_days_then_seen_again_counts_the_days_between(
    storage: Any, tenant: Tenant
) -> None:
    """Active until its last sign of life: silent from minute 11 (no reaper runs here), its
    hours count nothing after it; seen again two days on, the next run counts them all
    (it resumes at the last sign of life it knew, not later)."""
    await storage.funnels.put(tenant.id, PHOTO)
    session = await stored_session(storage, tenant, 10, kind="kiosk", resource_id="booth-1")
    await storage.sessions.heartbeat(tenant.id, session.id, at(11))
    await roll_up(storage, tenant, 60)
    await roll_up(storage, tenant, 24 * 60)
    assert await active_seconds(storage, tenant) == 60

    await storage.sessions.heartbeat(tenant.id, session.id, at(2 * 24 * 60))
    await roll_up(storage, tenant, 2 * 24 * 60 + 5)

    assert await active_seconds(storage, tenant) == (2 * 24 * 60 - 10) * 60
