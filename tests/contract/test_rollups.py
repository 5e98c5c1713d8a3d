"""Rollups on every store: what an hour's raw data adds up to, buckets replaced whole, one runner
per tenant at a time, late data picked up by the next run."""

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from application.ports import Window
from application.retention.apply_retention import ApplyRetentionCommand
from application.rollups.roll_up_usage import RollUpUsage, RollUpUsageCommand
from domain.calendar import Period
from domain.events import Event
from domain.livekit import TrackReport
from domain.rollups import Activity, Rollup, ServerLoad
from domain.session import Exit
from domain.snapshots import Snapshot
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, SHUT, T0, add_tenant, at, stored_session, wired
from tests.contract.races import Call, Race
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

HOUR = T0.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)  # 13:00


def in_hour(minutes: float) -> Any:
    return HOUR + timedelta(minutes=minutes)


async def test_an_hour_adds_up_sessions_events_usage_and_tracks_by_kind_and_resource(
    storage: Any, tenant: Tenant
) -> None:
    other = await add_tenant(storage, "globex")
    await stored_session(storage, other, 70)
    # Started the hour before, ended 30 minutes into it, with usage and a closed camera track.
    spanning = await stored_session(storage, tenant, 30, resource_id="room-1", kind="livekit")
    await storage.tracks.record(
        tenant.id, spanning.id, TrackReport("TR_1", "video.seconds", published_at=in_hour(-10))
    )
    await storage.tracks.record(
        tenant.id, spanning.id, TrackReport("TR_1", "video.seconds", unpublished_at=in_hour(20))
    )
    await storage.events.append(
        tenant.id,
        [
            (0, Event(spanning.id, 1, "tap", in_hour(-5))),
            (1, Event(spanning.id, 2, "tap", in_hour(5))),
            (2, Event(spanning.id, 3, "tap", in_hour(6))),
        ],
        NOW,
        OPEN,
    )
    await storage.sessions.close(
        tenant.id,
        spanning.id,
        Exit(in_hour(30), usage={"cost_usd": Decimal("0.25")}),
        frozenset(),
        NOW,
        SHUT,
    )
    # Started in the hour and still active, last seen 50 minutes into it.
    active = await stored_session(storage, tenant, 60 + 40, resource_id="room-1", kind="livekit")
    await storage.sessions.heartbeat(tenant.id, active.id, at(110))
    # Another resource, entirely in the next hour: not in this one.
    await stored_session(storage, tenant, 130, resource_id="room-2", kind="livekit")

    activity = await storage.usage_source.activity(tenant.id, HOUR, HOUR + timedelta(hours=1))

    assert activity == [
        Activity(
            "livekit",
            "room-1",
            sessions_started=1,
            sessions_ended=1,
            active_seconds=30 * 60 + 10 * 60,
            events=2,
            meters={"cost_usd": Decimal("0.25"), "video.seconds": 1800},
            track_seconds={"video.seconds": 20 * 60},
            ended_statuses={"completed": 1},
            ended_seconds=(in_hour(30) - spanning.started_at).total_seconds(),
        )
    ]


async def test_track_time_counts_in_the_hours_it_was_published_even_after_its_stay_ended(
    storage: Any, tenant: Tenant
) -> None:
    """A bucket's track seconds are the published track time that fell in it, whether or not
    the track's stay ran in it: reordered webhooks may unpublish a track after its stay's end,
    and the hours still add up to what the track added to the session's usage."""
    second = timedelta(seconds=1)
    stay = await stored_session(storage, tenant, 30, resource_id="room-1", kind="livekit")
    await storage.sessions.close(tenant.id, stay.id, Exit(HOUR - second), frozenset(), NOW, SHUT)
    # Unpublished a second after the stay's end, in its hour, and one into the next hour.
    for sid, meter, unpublished_at in (
        ("TR_mic", "audio.seconds", HOUR),
        ("TR_cam", "video.seconds", HOUR + second),
    ):
        await storage.tracks.record(
            tenant.id, stay.id, TrackReport(sid, meter, published_at=in_hour(-20))
        )
        await storage.tracks.record(
            tenant.id, stay.id, TrackReport(sid, meter, unpublished_at=unpublished_at)
        )

    before = await storage.usage_source.activity(tenant.id, HOUR - timedelta(hours=1), HOUR)
    after = await storage.usage_source.activity(tenant.id, HOUR, HOUR + timedelta(hours=1))

    assert [a.track_seconds for a in before] == [
        {"audio.seconds": 20 * 60, "video.seconds": 20 * 60}
    ]
    # Its two unpublishes are session events of the hour too.
    assert after == [Activity("livekit", "room-1", events=2, track_seconds={"video.seconds": 1})]
    found = await storage.sessions.get(tenant.id, stay.id)
    assert found.usage == {"audio.seconds": 20 * 60, "video.seconds": 20 * 60 + 1}


async def test_a_bucket_is_replaced_whole_and_read_back_by_kind_and_resource(
    storage: Any, tenant: Tenant
) -> None:
    first = Rollup(
        Period.HOUR,
        HOUR,
        [Activity("webinar", "w-1", sessions_started=3), Activity("webinar", "w-2", events=2)],
        ServerLoad(2, 5_000, 60.0, 40.0, 10, 6),
    )
    second = replace(first, activity=[Activity("webinar", "w-1", sessions_started=4)])

    await storage.rollups.replace(tenant.id, first)
    await storage.rollups.replace(tenant.id, second)
    await storage.rollups.replace(tenant.id, replace(first, period=Period.DAY, start=HOUR))

    assert await storage.rollups.find(tenant.id, Period.HOUR, Window()) == [second]
    only_w2 = await storage.rollups.find(tenant.id, Period.DAY, Window(), resource_id="w-2")
    assert only_w2 == [replace(first, period=Period.DAY, activity=[first.activity[1]])]
    outside = Window(HOUR + timedelta(hours=1), None)
    assert await storage.rollups.find(tenant.id, Period.HOUR, outside) == []


async def test_one_runner_holds_a_tenant_until_it_releases_or_its_lease_runs_out(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    leases = storage.rollup_leases

    def acquire(holder: str) -> Call:
        return lambda s: s.rollup_leases.acquire(tenant.id, holder, at(0), at(10))

    held = await race(*(acquire(f"runner-{n}") for n in range(8)))

    winners = [lease for lease in held if lease is not None]
    assert len(winners) == 1 and winners[0].resume_from is None
    holder = winners[0].holder
    assert not await leases.renew(tenant.id, "someone-else", at(20))
    assert await leases.renew(tenant.id, holder, at(20))
    assert await leases.acquire(tenant.id, "late", at(15), at(25)) is None
    await leases.release(tenant.id, holder, at(5), "Asia/Seoul store_id")
    again = await leases.acquire(tenant.id, "next", at(16), at(26))
    assert again is not None and (again.resume_from, again.cut) == (at(5), "Asia/Seoul store_id")
    # A runner that died: its lease runs out and another takes over.
    taken = await leases.acquire(tenant.id, "after-crash", at(27), at(37))
    assert taken is not None and taken.resume_from == at(5)
    assert not await leases.renew(tenant.id, "next", at(40))


async def test_a_runner_renewing_a_lease_that_ran_out_and_one_taking_it_never_both_hold_it(
    storage: Any, race: Race
) -> None:
    # Six tenants whose leases ran out at minute 10: for each, the old holder renews while a
    # new runner acquires at minute 10. One of them holds the tenant, never both.
    tenants = [await add_tenant(storage, f"tenant-{n}") for n in range(6)]
    for t in tenants:
        assert await storage.rollup_leases.acquire(t.id, "old", at(0), at(10))

    def renew(tenant: Tenant) -> Call:
        return lambda s: s.rollup_leases.renew(tenant.id, "old", at(20))

    def take_over(tenant: Tenant) -> Call:
        return lambda s: s.rollup_leases.acquire(tenant.id, "new", at(10), at(20))

    outcomes = await race(*(call(t) for t in tenants for call in (renew, take_over)))

    for renewed, taken in zip(outcomes[::2], outcomes[1::2], strict=True):
        assert renewed is (taken is None)
        assert taken is None or taken.holder == "new"
    for t, renewed in zip(tenants, outcomes[::2], strict=True):
        # Whoever holds it: the other one can neither renew nor take it now.
        loser = "new" if renewed else "old"
        assert not await storage.rollup_leases.renew(t.id, loser, at(30))
        assert await storage.rollup_leases.acquire(t.id, loser, at(15), at(30)) is None


async def test_a_lease_is_free_from_the_instant_it_runs_out_and_none_is_renewed_unheld(
    storage: Any, tenant: Tenant
) -> None:
    leases = storage.rollup_leases
    assert not await leases.renew(tenant.id, "nobody", at(5))

    assert await leases.acquire(tenant.id, "first", at(0), at(10))
    assert await leases.acquire(tenant.id, "second", at(9), at(20)) is None
    taken = await leases.acquire(tenant.id, "second", at(10), at(20))

    assert taken is not None and taken.holder == "second"
    assert not await leases.renew(tenant.id, "first", at(30))
    # A renewed lease runs out at its new end just the same.
    assert await leases.renew(tenant.id, "second", at(30))
    assert await leases.acquire(tenant.id, "third", at(29), at(40)) is None
    assert await leases.acquire(tenant.id, "third", at(30), at(40)) is not None


def roll_up(storage: Any, now_minutes: float) -> RollUpUsage:
    return wired(storage, FakeClock(at(now_minutes))).jobs().roll_up_usage()


async def test_a_run_rolls_up_hours_and_days_and_a_second_run_changes_nothing(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant, 10, resource_id="w-1")
    await storage.sessions.close(tenant.id, session.id, Exit(at(100)), frozenset(), NOW, SHUT)
    await storage.snapshots.add(
        tenant.id,
        [Snapshot("lk-1", at(m), 20.0 + m / 10, 1, 1, m * 1_000_000, m // 10, 1) for m in (5, 65)],
    )

    run = await roll_up(storage, 200)(RollUpUsageCommand(tenant.name))
    hours = await storage.rollups.find(tenant.id, Period.HOUR, Window())
    days = await storage.rollups.find(tenant.id, Period.DAY, Window())
    again = await roll_up(storage, 200)(RollUpUsageCommand(tenant.name, since=T0))

    assert (run.tenants, run.hours, run.days) == (1, 4, 1)  # 12:00 to 15:00
    assert [h.start.hour for h in hours] == [12, 13, 14, 15]
    assert [sum(a.active_seconds for a in h.activity) for h in hours] == [
        (HOUR - at(10)).total_seconds(),
        (at(100) - HOUR).total_seconds(),
        0.0,
        0.0,
    ]
    assert hours[1].load == ServerLoad(1, 60_000_000, 26.5, 26.5, 6, 6)
    day = days[0]
    ran = (at(100) - at(10)).total_seconds()
    assert day.activity == [
        Activity(
            "webinar",
            "w-1",
            1,
            1,
            ran,
            0,
            {},
            {},
            ended_statuses={"completed": 1},
            ended_seconds=ran,
        )
    ]
    assert day.load == ServerLoad(2, 60_000_000, 47.0, 26.5, 6, 6)
    assert await storage.rollups.find(tenant.id, Period.HOUR, Window()) == hours
    assert await storage.rollups.find(tenant.id, Period.DAY, Window()) == days
    assert again.hours == 4


async def test_a_session_that_ends_after_its_hours_were_rolled_up_is_counted_by_the_next_run(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant, 0, resource_id="w-1")
    await storage.sessions.heartbeat(tenant.id, session.id, at(30))
    await roll_up(storage, 30)(RollUpUsageCommand(tenant.name))

    await storage.sessions.close(
        tenant.id, session.id, Exit(at(300), usage={"pages": 3}), frozenset(), NOW, SHUT
    )
    await roll_up(storage, 310)(RollUpUsageCommand(tenant.name))

    day = (await storage.rollups.find(tenant.id, Period.DAY, Window()))[0]
    assert day.activity[0].sessions_ended == 1
    assert day.activity[0].meters == {"pages": 3}
    assert day.activity[0].active_seconds == 300 * 60


async def test_runners_started_together_roll_up_each_tenant_once_and_agree(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    for n in range(5):
        session = await stored_session(storage, tenant, n * 20, subject_id=f"u{n}")
        await storage.sessions.close(
            tenant.id, session.id, Exit(at(n * 20 + 15)), frozenset(), NOW, SHUT
        )

    runs = await race(*[lambda s: roll_up(s, 150)(RollUpUsageCommand(tenant.name))] * 6)
    after_race = await storage.rollups.find(tenant.id, Period.HOUR, Window())
    await roll_up(storage, 150)(RollUpUsageCommand(tenant.name, since=T0))

    assert sum(r.tenants for r in runs) >= 1
    assert sum(r.tenants + r.skipped for r in runs) == 6
    assert after_race == await storage.rollups.find(tenant.id, Period.HOUR, Window())
    assert sum(a.sessions_started for h in after_race for a in h.activity) == 5


async def test_retention_deletes_old_hourly_buckets_a_batch_at_a_time(
    storage: Any, tenant: Tenant
) -> None:
    for h in range(3):
        start = HOUR + timedelta(hours=h)
        await storage.rollups.replace(tenant.id, Rollup(Period.HOUR, start))
    await storage.rollups.replace(tenant.id, Rollup(Period.DAY, HOUR))

    cutoff = HOUR + timedelta(hours=2)
    first = await storage.retention.delete_rollups(tenant.id, Period.HOUR, cutoff, 1)
    second = await storage.retention.delete_rollups(tenant.id, Period.HOUR, cutoff, 1)
    third = await storage.retention.delete_rollups(tenant.id, Period.HOUR, cutoff, 1)

    assert (first, second, third) == (1, 1, 0)
    kept = await storage.rollups.find(tenant.id, Period.HOUR, Window())
    assert [r.start for r in kept] == [cutoff]
    assert len(await storage.rollups.find(tenant.id, Period.DAY, Window())) == 1


async def test_a_run_reaching_back_past_retention_keeps_the_buckets_whose_sources_are_gone(
    storage: Any,
) -> None:
    # Hourly rollups stay a day past the late-data window too: an hour's window here.
    tenant = await add_tenant(
        storage,
        "archive",
        event_retention_days=1,
        hourly_rollup_retention_days=1,
        late_data_window_seconds=3600,
    )
    for minutes in (-600, 480):  # at 02:00 and 20:00
        await stored_session(storage, tenant, minutes, subject_id=f"u{minutes}")
    midnight = at(-12 * 60)
    await roll_up(storage, 600)(RollUpUsageCommand(tenant.name, since=midnight))
    [day] = await storage.rollups.find(tenant.id, Period.DAY, Window())
    # A day later retention deletes the morning's hours; then an operator reaches back anyway.
    a_day_later = 24 * 60
    retention = wired(storage, FakeClock(at(a_day_later))).jobs().apply_retention()
    await retention(ApplyRetentionCommand())
    run = await roll_up(storage, a_day_later)(RollUpUsageCommand(tenant.name, since=midnight))

    assert day.activity[0].sessions_started == 2
    kept, next_day = await storage.rollups.find(tenant.id, Period.DAY, Window())
    assert kept == day and run.days == 1  # only the next day was rebuilt
    assert next_day.start == day.start + timedelta(days=1)
    hours = await storage.rollups.find(tenant.id, Period.HOUR, Window())
    # Those retention deleted (older than a day and the window) are not made again.
    assert hours[0].start >= at(a_day_later) - timedelta(days=1, hours=1)
