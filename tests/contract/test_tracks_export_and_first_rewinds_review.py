"""A hostile review of 8e9cb43 (a tenant's export carries its stays' LiveKit tracks) and c366f62
(a rollup rewind of a tenant never rolled up creates its lease row; the first run starts there),
on every store and across stores.

Found, and fixed since (each test failed before its fix):

- An import racing a webhook of a stay it moves lost the track (every store): the import
  restored the sessions (and their events), then the tracks. A `track_unpublished` handled on
  the new store in between found the stay and no track: it stored the track with its end only,
  and the file's track, with its publish, was then "already there" and kept out, so the
  camera's seconds were never counted (11 credits instead of 21). The tracks now come before
  the tenant's LiveKit keys in the export: the new store refuses the tenant's webhooks (401,
  which LiveKit sends again) until its tracks are in.
  test_an_unpublish_sent_while_the_import_stores_the_sessions_counts_the_camera.
- MongoDB: the first acquire of a tenant's rollup lease racing a rewind (which now upserts the
  lease document too) failed about one time in four: the upserts collided, the server took the
  lease for the acquire and answered no document, and `assert taken is not None` raised, leaving
  the lease held for 10 minutes. The acquire now reads what it holds.
  test_a_rewind_racing_the_first_acquire_is_given_to_a_run.
- A track line whose published_at or unpublished_at was text (an ISO string, not the format's
  {"$time": ...}) passed the import's checks (every store), to fail mid-import (SQL) or be
  stored as text (memory, MongoDB). The format now refuses an instant or a day that is not
  written as one, in every record.
  test_a_malformed_track_line_is_refused_naming_it_before_anything_is_stored.

Held (regular tests): a stay moved mid-call between two different stores (SQLite->memory,
MongoDB->SQLite, MongoDB->PostgreSQL, PostgreSQL->MongoDB), with an open camera, a camera
ended by its stay (`end_from_stay`, counted), one ended by LiveKit (counted) and an open screen
share, ends on the target exactly as on the source after the same webhooks: an unpublish after
the move, a duplicate unpublish, LiveKit's own end replacing the stay's, the lefts, or a
room_finished or reconciliation ending the stays and their open tracks (tracks_ending_with_stay)
- same usage, status, end, charge, ledger, open tracks, event numbers (a track's events are
numbered after the moved session's highest) and no gaps; the hours and days the target's rollup
job makes (track_seconds per hour) equal the source's; importing the file again after webhooks
on the target changes nothing; a malformed track line (a time out of range, a sid MongoDB cannot
key, a counted track without its end, a meter that is no meter name, an empty session id, a sid
longer than the columns) is refused naming its line and nothing is stored. c366f62: concurrent
rewinds of a tenant with no lease row keep the earliest on every store (MongoDB's DuplicateKey
path included); a rewind far in the past (year 1) is clipped to what retention keeps in any time
zone; a rewind for a tenant id that does not exist stores nothing a rollup run trips over; a
time zone change with a rewind pending before the tenant's creation still counts that data in
its hour and in the new zone's day.
"""

import json
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.ports import Window
from application.rollups.roll_up_usage import RollupRun, RollUpUsageCommand
from application.transfer.import_tenant import ImportCounts, ImportTenantCommand
from application.transfer.ports import ArchivedTrack
from domain.calendar import Period, hour_of
from domain.errors import InvalidInput, Unauthorized
from domain.tenants import Tenant
from tests.conftest import Databases, open_storage
from tests.contract.builders import T0, add_tenant, at, set_at, stored_session, wired
from tests.contract.races import PausesBeforeRestoring, Race, after
from tests.contract.test_archive import export
from tests.contract.test_livekit_stays import (
    JOINED,
    Webhook,
    deliver,
    gone,
    ledger_total,
    livekit_server_of,
    published,
    reconcile,
    room_finished,
    settled_stay,
    unpublished,
)
from tests.fakes import FakeClock
from tests.livekit_server import LiveKitServer

pytestmark = pytest.mark.anyio

# The source of a move into each store: another family every time.
SOURCE_OF = {
    "memory": "sqlite",
    "sqlite": "mongodb",
    "postgresql": "mongodb",
    "mongodb": "postgresql",
}
PEOPLE = ("ana", "bob", "cid")
ROLLED_UP_AT = at(180)


def family(url: str) -> str:
    return next(f for f in SOURCE_OF if url.startswith(f))


@pytest.fixture
async def source(storage_url: str, databases: Databases) -> AsyncIterator[Any]:
    """A store of another family than the test's: where the tenant moves from."""
    with databases.fresh(SOURCE_OF[family(storage_url)]) as url:
        opened = open_storage(url)
        try:
            yield opened
        finally:
            if url != "memory://":
                await opened.close()


async def import_into(storage: Any, lines: Sequence[str], **ports: Any) -> ImportCounts:
    counts: ImportCounts = (
        await wired(storage, **ports).use_cases().import_tenant()(ImportTenantCommand(lines))
    )
    return counts


def screen(server: LiveKitServer, event: str, who: str, when: datetime) -> Webhook:
    return server.track(event, who, JOINED, f"SS_{who}", "SCREEN_SHARE", when)


async def a_call(storage: Any) -> tuple[Tenant, LiveKitServer]:
    """A call under way: ana's camera is open; bob left at 11 (his camera ended with his stay,
    counted); cid's camera was unpublished by LiveKit at 6 (counted) and his screen share,
    published at 2, is open; ana and cid are still in the room."""
    tenant = await add_tenant(storage, "calls")
    server = await livekit_server_of(storage, tenant)
    for who in PEOPLE:
        await deliver(storage, server.joined(who, JOINED))
        await deliver(storage, published(server, who))
    await deliver(storage, server.left("bob", JOINED, at(11)))
    await deliver(storage, unpublished(server, "cid", at(6)))
    await deliver(storage, screen(server, "track_published", "cid", at(2)))
    return tenant, server


async def stay_state(storage: Any, tenant: Tenant, server: LiveKitServer, who: str) -> Any:
    """All a store says of a stay: its end, usage, charge and ledger, its open tracks (or ended
    with it), and its events with their numbers."""
    stay = await settled_stay(storage, tenant, server, who)
    events = await storage.events.find(tenant.id, stay.id, limit=1000)
    return (
        stay.status,
        stay.ended_at,
        dict(stay.usage),
        stay.charge_state,
        stay.charge.credits if stay.charge else None,
        await ledger_total(storage, tenant, who, stay),
        (stay.max_sequence_no, stay.event_count, stay.event_gaps),
        await storage.tracks.tracks_ending_with_stay(tenant.id, stay.id),
        [(e.sequence_no, e.type, e.at, e.data) for e in events],
    )


async def states(storage: Any, tenant: Tenant, server: LiveKitServer) -> list[Any]:
    return [await stay_state(storage, tenant, server, who) for who in PEOPLE]


async def hours_and_days(storage: Any, tenant: Tenant) -> list[Any]:
    """The tenant's hourly and daily rollups of the call's days, after a run of its rollup job
    (the same clock on both stores)."""
    run: RollupRun = (
        await wired(storage, FakeClock(ROLLED_UP_AT))
        .jobs()
        .roll_up_usage()(RollUpUsageCommand(tenant.name))
    )
    assert not run.failures, run.failures
    window = Window(at(-24 * 60), at(2 * 24 * 60))
    return [
        [
            (r.start, sorted(r.activity, key=repr))
            for r in await storage.rollups.find(tenant.id, p, window)
        ]
        for p in (Period.HOUR, Period.DAY)
    ]


# --- 8e9cb43: stays moved mid-call between two different stores ---------------------------


async def test_webhooks_after_a_move_end_the_stays_as_they_would_have_on_the_source(
    storage: Any, source: Any
) -> None:
    """An unpublish arriving after the move (ana's camera, open when exported), the same one
    again, LiveKit's own end of bob's camera replacing the end his stay gave it (a counted
    track shortened: an adjustment), and the lefts: on the target each track's seconds count
    once and each stay is charged what the source charges after the same webhooks; the track
    events are numbered after each moved session's highest number, without gaps; the target's
    rollup job makes the hours and days (track_seconds) the source's makes."""
    tenant, server = await a_call(source)
    lines = await export(source, tenant.name)
    await import_into(storage, lines)
    assert await states(storage, tenant, server) == await states(source, tenant, server)
    ana_off = unpublished(server, "ana", at(6))
    after_move = [
        ana_off,
        ana_off,  # the same webhook delivered again (its id is not carried by a move)
        unpublished(server, "ana", at(6)),
        unpublished(server, "bob", at(5)),
        server.left("ana", JOINED, at(11)),
        server.left("cid", JOINED, at(12)),
    ]
    for webhook in after_move:
        await deliver(source, webhook)
        await deliver(storage, webhook)

    there = await states(storage, tenant, server)
    assert there == await states(source, tenant, server)
    ana, bob, cid = there
    assert (ana[2], ana[4]) == ({"video.seconds": 300}, 11 + 5 * 2)
    assert (bob[2], bob[4]) == ({"video.seconds": 240}, 11 + 4 * 2)
    assert cid[2] == {"video.seconds": 300, "screen_share.seconds": 600}
    assert [e[0] for e in ana[-1]] == [1, 2] and ana[-1][1][1] == "video_end"
    assert await hours_and_days(storage, tenant) == await hours_and_days(source, tenant)


@pytest.mark.parametrize("ender", ["room_finished", "reconciliation"])
async def test_a_stay_moved_with_open_tracks_ended_on_the_target_ends_them_once(
    storage: Any, source: Any, ender: str
) -> None:
    """The stays still open when moved (ana's camera, cid's screen share open) are ended on the
    target by a room_finished, or by reconciliation finding the room empty: their open tracks
    end with them (tracks_ending_with_stay), each counted once, charged as on the source after
    the same ender; a late LiveKit unpublish of the screen share then corrects it on both."""
    tenant, server = await a_call(source)
    await import_into(storage, await export(source, tenant.name))
    late = screen(server, "track_unpublished", "cid", at(4))
    for store in (source, storage):
        if ender == "room_finished":
            await deliver(store, room_finished(server, at(20)))
        else:
            await reconcile(store, tenant, gone(server))
        await deliver(store, late)

    there = await states(storage, tenant, server)
    assert there == await states(source, tenant, server)
    assert all(stay[1] is not None for stay in there)
    assert there[2][2]["screen_share.seconds"] == 120
    assert await hours_and_days(storage, tenant) == await hours_and_days(source, tenant)


async def test_importing_again_after_webhooks_on_the_target_changes_nothing(
    storage: Any, source: Any
) -> None:
    """The file imported again once the target's webhooks have ended ana's camera and her stay
    (her track present with another state than the file's): the target keeps its own, nothing
    counts twice, nothing is new."""
    tenant, server = await a_call(source)
    lines = await export(source, tenant.name)
    await import_into(storage, lines)
    for webhook in (unpublished(server, "ana", at(6)), server.left("ana", JOINED, at(11))):
        await deliver(storage, webhook)
    before = await states(storage, tenant, server)

    again = await import_into(storage, lines)

    assert sum(again.new.values()) == 0
    assert await states(storage, tenant, server) == before
    assert before[0][2] == {"video.seconds": 300}


async def test_an_unpublish_sent_while_the_import_stores_the_sessions_counts_the_camera(
    storage: Any, source: Any, race: Race
) -> None:
    """Forced: LiveKit's webhooks already go to the new server while the import runs; ana's
    track_unpublished comes there after the import stored her session and before it stores
    the tracks. Then she leaves. Right: as on the source, 5 minutes of camera counted once,
    charged 11 + 10. Found by the review: the webhook stored the track with its end only and
    the file's track (with its publish) was then kept out as already there (11 credits). The
    tracks now come before the tenant's LiveKit keys: the new store refuses the webhook
    (401), and LiveKit sends it again."""
    tenant, server = await a_call(source)
    lines = await export(source, tenant.name)
    reached, go = threading.Event(), threading.Event()

    async def imports(s: Any) -> Any:
        return await import_into(
            s, lines, archive=PausesBeforeRestoring(s.archive, ArchivedTrack, reached, go)
        )

    ana_off, ana_left = unpublished(server, "ana", at(6)), server.left("ana", JOINED, at(11))
    refused: list[Unauthorized] = []

    async def sent_meanwhile(s: Any) -> None:
        try:
            await deliver(s, ana_off)
        except Unauthorized as error:
            refused.append(error)

    await race(imports, after(reached, go, sent_meanwhile))
    assert len(refused) == 1
    for store in (source, storage):
        await deliver(store, ana_off)  # on the new store: LiveKit's retry
        await deliver(store, ana_left)

    ana = await stay_state(storage, tenant, server, "ana")
    assert (ana[2], ana[4]) == ({"video.seconds": 300}, 21)
    assert await states(storage, tenant, server) == await states(source, tenant, server)


MALFORMED: dict[str, Callable[[dict[str, Any]], None]] = {
    "a publish given as text": set_at(("report", "published_at"), "2026-11-24T12:06:00+00:00"),
    "an end given as text": set_at(("report", "unpublished_at"), "2026-11-24T12:06:00+00:00"),
    "a time before 2000": set_at(
        ("report", "published_at"), {"$time": "0001-01-01T00:00:00+00:00"}
    ),
    "a sid MongoDB cannot key": set_at(("report", "track_sid"), "TR.cam"),
    "a sid of a dollar": set_at(("report", "track_sid"), "$TR"),
    "a sid longer than the columns": set_at(("report", "track_sid"), "T" * 201),
    "counted without its end": set_at(("counted",), True),
    "a meter that is no meter name": set_at(("report", "meter"), "Video Seconds"),
    "an empty session id": set_at(("session_id",), ""),
    "counted as text": set_at(("counted",), "yes"),
}


@pytest.mark.parametrize("edit", MALFORMED, ids=list(MALFORMED))
async def test_a_malformed_track_line_is_refused_naming_it_before_anything_is_stored(
    storage: Any, source: Any, edit: str
) -> None:
    """README: a line no run or webhook could have made is refused, naming the line, before
    anything is stored (not a crash in the target's storage layer, nor later in a webhook)."""
    tenant, _ = await a_call(source)
    lines = await export(source, tenant.name)
    (number,) = [
        n
        for n, line in enumerate(lines)
        if json.loads(line)["record"] == "track"
        and json.loads(line)["report"]["track_sid"] == "TR_ana"
    ]
    record = json.loads(lines[number])
    MALFORMED[edit](record)
    lines[number] = json.dumps(record)

    with pytest.raises(InvalidInput) as refused:
        await import_into(storage, lines)

    assert f"line {number + 1}" in str(refused.value)
    assert await storage.tenants.get(tenant.id) is None


# --- c366f62: rewinds of a tenant never rolled up --------------------------------------------

ROUNDS = 10
TENANTS_A_ROUND = 8


async def test_concurrent_first_rewinds_keep_the_earliest(storage: Any, race: Race) -> None:
    """Rewinds of a tenant without a lease row, at once (several processes' late data): the
    first run is given the earliest, whichever inserted the row (MongoDB: the upserts that
    collide take the DuplicateKeyError path, which must not drop an earlier point)."""
    wrong = []
    for n in range(3):
        tenants = [await add_tenant(storage, f"never-{n}-{k}") for k in range(3)]
        calls = [
            (lambda s, t=t, m=m: s.rollup_leases.rewind(t.id, at(m)))
            for t in tenants
            for m in (5, 3, 1, 6, 2, 4)
        ]
        raised = [r for r in await race(*calls, return_exceptions=True) if r is not None]
        for t in tenants:
            lease = await storage.rollup_leases.acquire(t.id, "first", at(100), at(110))
            if raised or lease is None or lease.resume_from != at(1):
                wrong.append((n, raised, lease))
    assert wrong == []


async def test_a_rewind_racing_the_first_acquire_is_given_to_a_run(
    storage: Any, race: Race
) -> None:
    """A tenant's first rollup run acquires its lease while late data rewinds it (both create
    the row if it is not there). Right: the acquire gets the lease (nobody holds it), and the
    rewind is given to this run or, left for the next, to that one."""
    wrong: list[Any] = []
    for n in range(ROUNDS):
        tenants = [await add_tenant(storage, f"first-{n}-{k}") for k in range(TENANTS_A_ROUND)]
        calls = []
        for t in tenants:
            calls.append(lambda s, t=t: s.rollup_leases.rewind(t.id, at(1)))
            calls.append(lambda s, t=t: s.rollup_leases.acquire(t.id, "first", at(100), at(110)))
        outcomes = await race(*calls, return_exceptions=True)
        for t, lease in zip(tenants, outcomes[1::2], strict=True):
            if isinstance(lease, BaseException) or lease is None:
                wrong.append((n, repr(lease)))
            elif lease.resume_from != at(1):
                await storage.rollup_leases.release(t.id, "first", at(200), "UTC")
                again = await storage.rollup_leases.acquire(t.id, "second", at(300), at(310))
                if again is None or again.resume_from != at(1):
                    wrong.append((n, again))
        if wrong:
            break
    assert wrong == []


@pytest.mark.parametrize("zone", ["America/New_York", "Pacific/Kiritimati"])
async def test_a_first_rewind_to_year_one_is_clipped_to_what_retention_keeps(
    storage: Any, zone: str
) -> None:
    """A rewind before anything retention keeps, before what a zone west of UTC can even
    express locally (year 1): the first run makes only the hours retention keeps (2 days of
    events), fails nothing, and the next run resumes near now."""
    tenant = await add_tenant(storage, "far", time_zone=zone, event_retention_days=2)
    await storage.rollup_leases.rewind(tenant.id, datetime(1, 1, 1, tzinfo=UTC))

    run = (
        await wired(storage, FakeClock(ROLLED_UP_AT))
        .jobs()
        .roll_up_usage()(RollUpUsageCommand(tenant.name))
    )

    assert not run.failures and run.tenants == 1
    assert 24 <= run.hours <= 2 * 24 + 4
    lease = await storage.rollup_leases.acquire(tenant.id, "next", at(200), at(210))
    assert lease is not None and lease.resume_from is not None
    assert ROLLED_UP_AT - timedelta(hours=3) <= lease.resume_from <= ROLLED_UP_AT


async def test_a_rewind_for_a_tenant_that_does_not_exist_trips_no_rollup_run(
    storage: Any, tenant: Tenant
) -> None:
    """Rewinds now create lease rows: one for an unknown tenant id (late data of a tenant that is
    not, or not yet, in this store) is taken without an error, and the rollup job of every
    tenant runs as before."""
    await storage.rollup_leases.rewind("no-such-tenant", at(1))
    await storage.rollup_leases.rewind("no-such-tenant", at(-60))

    run = await wired(storage, FakeClock(ROLLED_UP_AT)).jobs().roll_up_usage()(RollUpUsageCommand())

    assert not run.failures and (run.tenants, run.skipped) == (1, 0)


async def test_a_time_zone_change_with_a_first_rewind_pending_counts_the_old_data_in_its_day(
    storage: Any,
) -> None:
    """A session a day older than the tenant, rewound before the tenant's first run; the tenant
    then moves to Asia/Kolkata (days that do not start on a UTC hour). The first run counts the
    session in its hour and in its Kolkata day."""
    tenant = await add_tenant(storage, "older", event_retention_days=5)
    old = await stored_session(storage, tenant, -24 * 60, kind="kiosk", client_key="k-1")
    await storage.rollup_leases.rewind(tenant.id, hour_of(old.started_at))
    await storage.tenants.change_settings(tenant.id, lambda s: replace(s, time_zone="Asia/Kolkata"))

    run = (
        await wired(storage, FakeClock(T0 + timedelta(days=2)))
        .jobs()
        .roll_up_usage()(RollUpUsageCommand(tenant.name))
    )

    assert not run.failures
    hour = hour_of(old.started_at)
    (rolled,) = await storage.rollups.find(
        tenant.id, Period.HOUR, Window(hour, hour + timedelta(seconds=1))
    )
    assert [a.sessions_started for a in rolled.activity] == [1]
    days = await storage.rollups.find(
        tenant.id, Period.DAY, Window(T0 - timedelta(days=3), T0 + timedelta(days=3))
    )
    assert sum(a.sessions_started for d in days for a in d.activity) == 1
    (day,) = [d for d in days if any(a.sessions_started for a in d.activity)]
    assert day.start <= old.started_at < day.start + timedelta(days=1)
    assert day.start.minute == 30  # a Kolkata day
