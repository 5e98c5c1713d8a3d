"""MongoDB: what a LiveKit track write that died left of its session is finished by the reaper's
pass (livekit.finish_dead_track_ends, run by MongoSessionRepository.time_out_idle).

MongoTrackLog.record numbers a track's ends in one update (ENDS_IN_FLIGHT), inserts them, then
counts them. A write that died in between left its session with ends in flight for good (every
export waited 1.7 s on it, then gave it with them as a gap) and its event_count short of its
events. Ends still in flight ENDS_DEAD_AFTER after their numbering are a dead write's: the pass
counts what the session truly holds and leaves none in flight, exactly once whoever else runs,
and leaves a write that may be alive to finish on its own."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from bson import ObjectId

from adapters.mongodb import archive, event_documents, livekit
from adapters.mongodb.event_counting import finish_batches
from adapters.mongodb.livekit import ENDS_IN_FLIGHT, MongoTrackLog
from adapters.mongodb.sessions import MongoSessionRepository
from adapters.mongodb.storage import MongoStorage
from application.sessions.reap_stale_sessions import BATCH_SIZE, ReapStaleSessionsCommand
from domain.livekit import TrackReport
from domain.session import Session
from domain.staleness import Staleness
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, add_tenant, at, event, stored_session, wired
from tests.contract.races import Race
from tests.contract.test_archive import CAMERA
from tests.contract.test_mongodb_export_pages_review import (
    Before,
    Died,
    Hook,
    on_mongodb,
    records_of,
)
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

# Where a write dies: after numbering its ends, before inserting them; or after inserting them,
# before counting them (its only `update_one` of sessions).
BEFORE_THE_INSERT = ("events", "insert_many")
BEFORE_THE_COUNT = ("sessions", "update_one")
# Not named from livekit.py (a field the fix adds): its absence is what the tests see without
# it. A write's entry while its ends are in flight (its token, track, numbers, ends and since).
WRITES = "ends_writes"
BOUND = timedelta(seconds=60)  # livekit.ENDS_DEAD_AFTER, as the tests rely on it


async def crash() -> None:
    raise Died


async def a_write_that_dies(
    storage: MongoStorage, tenant: Tenant, stay: Session, where: tuple[str, str]
) -> None:
    """A track write of CAMERA (two ends) into `stay`, whose process dies at `where`."""
    hooked = Before(storage.db, *where, crash)
    with pytest.raises(Died):
        await MongoTrackLog(hooked).record(tenant.id, stay.id, CAMERA)  # type: ignore[arg-type]


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], None]:
    """Moves the wall clock on which track writes are stamped and aged (livekit.wall_clock) to
    `by` from now: a clock past the bound is that of a pass run that much after the writes."""

    def move(by: timedelta) -> None:
        # (Set even where livekit has none, so that the tests fail on what they check there.)
        monkeypatch.setattr(livekit, "wall_clock", lambda: datetime.now(UTC) + by, raising=False)

    return move


PAST_THE_BOUND = BOUND + timedelta(seconds=1)


async def reap(storage: MongoStorage) -> None:
    """The reaper's pass as the server's background job runs it, at minute 40 (the stays, of
    kind livekit, never go idle)."""
    jobs = wired(storage, FakeClock(at(40))).jobs()
    reaped = await jobs.reap_stale_sessions()(ReapStaleSessionsCommand())
    assert (reaped.closed, reaped.failures) == (0, [])


async def pass_on(db: Any, tenant: Tenant) -> None:
    """The step of the reaper's pass that finishes them (MongoSessionRepository.time_out_idle,
    as ReapStaleSessions calls it), on `db` (hooked), closing no session."""
    sessions = MongoSessionRepository(db)
    await sessions.time_out_idle(tenant.id, Staleness(None), BATCH_SIZE, frozenset(), NOW, OPEN)


@dataclass(frozen=True)
class Left:
    in_flight: int
    event_count: int
    stored: int  # events documents of the session
    gaps: list[tuple[int, int]]
    stamped: bool = False  # a write's entry (ends_writes) kept with the ends in flight


async def left(storage: MongoStorage, tenant: Tenant, stay: Session) -> Left:
    document = await storage.db["sessions"].find_one({"tenant_id": tenant.id, "id": stay.id})
    assert document is not None
    stored = await storage.db["events"].count_documents(
        {"tenant_id": tenant.id, "session_id": stay.id}
    )
    read = await storage.sessions.get(tenant.id, stay.id)
    assert read is not None
    return Left(
        document[ENDS_IN_FLIGHT],
        document["event_count"],
        stored,
        read.event_gaps,
        bool(document.get(WRITES)),
    )


async def a_client_sends(storage: MongoStorage, tenant: Tenant, stay: Session, n: int) -> None:
    assert (await storage.events.append(tenant.id, [(0, event(stay, n))], NOW, OPEN)).inserted


async def two_dead_writes(storage: MongoStorage, tenant: Tenant) -> tuple[Session, Session]:
    """A stay whose track write died before inserting its ends (1, 2), and one whose write
    died before counting them; then each has a client's event 3."""
    unstored = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    uncounted = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-2")
    await a_write_that_dies(storage, tenant, unstored, BEFORE_THE_INSERT)
    await a_write_that_dies(storage, tenant, uncounted, BEFORE_THE_COUNT)
    for stay in (unstored, uncounted):
        await a_client_sends(storage, tenant, stay, 3)
    return unstored, uncounted


FINISHED_UNSTORED = Left(0, 1, 1, [(1, 2)])  # the ends never stored are a gap
FINISHED_UNCOUNTED = Left(0, 3, 3, [])


@on_mongodb
async def test_the_reapers_pass_finishes_what_dead_track_writes_left_and_no_export_waits(
    storage: MongoStorage, monkeypatch: pytest.MonkeyPatch, later: Callable[[timedelta], None]
) -> None:
    """Past the bound, the reaper's pass counts into each stay what it holds (the ends a write
    stored and never counted count; those it never stored are a gap) and leaves none in flight;
    an export then gives the stays at once (it waited 1.7 s on each at every export)."""
    tenant = await add_tenant(storage, "acme")
    unstored, uncounted = await two_dead_writes(storage, tenant)
    assert await left(storage, tenant, uncounted) == Left(2, 1, 3, [], stamped=True)

    later(PAST_THE_BOUND)
    await reap(storage)

    assert await left(storage, tenant, unstored) == FINISHED_UNSTORED
    assert await left(storage, tenant, uncounted) == FINISHED_UNCOUNTED
    monkeypatch.setattr(archive, "READS", 3)
    monkeypatch.setattr(archive, "REREAD_AFTER_SECONDS", 60.0)  # a wait would be one minute
    with anyio.fail_after(10):
        records = await records_of(storage)
    exported = {r.id: (r.event_count, r.event_gaps) for r in records if isinstance(r, Session)}
    assert exported == {unstored.id: (1, [(1, 2)]), uncounted.id: (3, [])}


@on_mongodb
async def test_ends_in_flight_within_the_bound_are_left_alone_until_it_passes(
    storage: MongoStorage, later: Callable[[timedelta], None]
) -> None:
    """A write that died less than ENDS_DEAD_AFTER ago may be a live one, slow: the pass leaves
    its session as it is; once the bound has passed, the pass finishes it."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    await a_write_that_dies(storage, tenant, stay, BEFORE_THE_COUNT)
    as_left = Left(2, 0, 2, [], stamped=True)
    assert await left(storage, tenant, stay) == as_left

    later(BOUND - timedelta(seconds=5))
    await reap(storage)
    assert await left(storage, tenant, stay) == as_left

    later(PAST_THE_BOUND)
    await reap(storage)
    assert await left(storage, tenant, stay) == Left(0, 2, 2, [])


@on_mongodb
async def test_a_live_track_write_is_left_to_finish_on_its_own(storage: MongoStorage) -> None:
    """The pass runs while a write is between its insert and its count (its entry is fresh):
    it changes nothing, and the write counts its ends once, leaving none in flight nor its
    entry."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")

    async def the_pass_meanwhile() -> None:
        before = datetime.now(UTC)
        await reap(storage)
        document = await storage.db["sessions"].find_one({"id": stay.id})
        assert document is not None
        assert (document[ENDS_IN_FLIGHT], document["event_count"]) == (2, 0)
        [entry] = document[WRITES]
        assert before - timedelta(seconds=5) < entry["since"] <= before

    hooked = Before(storage.db, *BEFORE_THE_COUNT, the_pass_meanwhile)
    assert await MongoTrackLog(hooked).record(tenant.id, stay.id, CAMERA)  # type: ignore[arg-type]

    assert hooked.ran
    assert await left(storage, tenant, stay) == Left(0, 2, 2, [])


@on_mongodb
@pytest.mark.parametrize("then", ["kept", "deleted by retention"])
async def test_a_live_writes_stored_ends_are_left_to_it_by_a_pass_that_finishes_a_dead_one(
    storage: MongoStorage, later: Callable[[timedelta], None], then: str
) -> None:
    """A write dies before counting its ends (1, 2); past the bound, a second track's write
    numbers its own (3, 4) and stores them, and the pass runs before it counts them (retention
    may have deleted them meanwhile, and the dead write's): the pass counts the dead write's
    ends, leaves the live one's in flight, uncounted (its entry is fresh), and the live write
    then counts them, once."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    await a_write_that_dies(storage, tenant, stay, BEFORE_THE_COUNT)  # ends at minutes 31, 33
    later(PAST_THE_BOUND)
    second = TrackReport("TR_cam_2", "video.seconds", at(34), at(36))
    stored = 4 if then == "kept" else 0

    async def retention_then_the_pass() -> None:
        if then == "deleted by retention":
            assert await storage.retention.delete_events(tenant.id, at(37), 100) == 4
        await pass_on(storage.db, tenant)
        assert await left(storage, tenant, stay) == Left(2, 2, stored, [], stamped=True)

    hooked = Before(storage.db, *BEFORE_THE_COUNT, retention_then_the_pass)
    assert await MongoTrackLog(hooked).record(tenant.id, stay.id, second)  # type: ignore[arg-type]

    assert hooked.ran
    assert await left(storage, tenant, stay) == Left(0, 4, stored, [])


@on_mongodb
async def test_a_write_that_outlived_the_bound_counts_nothing_twice(
    storage: MongoStorage, later: Callable[[timedelta], None]
) -> None:
    """A write slower than the bound finds its ends counted by the pass when it counts them:
    it counts nothing again, and leaves no negative number in flight (every export would wait
    on it)."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")

    async def the_pass_past_the_bound() -> None:
        later(PAST_THE_BOUND)
        await pass_on(storage.db, tenant)
        assert await left(storage, tenant, stay) == Left(0, 2, 2, [])

    hooked = Before(storage.db, *BEFORE_THE_COUNT, the_pass_past_the_bound)
    assert await MongoTrackLog(hooked).record(tenant.id, stay.id, CAMERA)  # type: ignore[arg-type]

    assert hooked.ran
    assert await left(storage, tenant, stay) == Left(0, 2, 2, [])


class BeforeReadingEvents(Before):
    """A database on which `hook` runs once, just before the first `find` of events that reads
    one session's (the pass's read of the session's events, not its look for marked ones)."""

    def __init__(self, db: Any, hook: Hook) -> None:
        super().__init__(db, "events", "find", hook)

    def __getitem__(self, name: str) -> Any:
        collection = self._db[name]
        if name != "events":
            return collection
        outer = self

        class _Events:
            def __getattr__(self, attribute: str) -> Any:
                return getattr(collection, attribute)

            def find(self, query: Any, *args: Any, **kwargs: Any) -> Any:
                if "session_id" not in query or outer.ran:
                    return collection.find(query, *args, **kwargs)
                return _Deferred(outer, collection, query, args, kwargs)

        return _Events()


class _Deferred:
    """A cursor opened after the hook has run (a `find` is sent at its first iteration)."""

    def __init__(self, db: Before, collection: Any, *call: Any) -> None:
        self._db, self._collection, self._call = db, collection, call
        self._cursor: Any = None

    def __aiter__(self) -> "_Deferred":
        return self

    async def __anext__(self) -> Any:
        if self._cursor is None:
            await self._db.run()
            query, args, kwargs = self._call
            self._cursor = self._collection.find(query, *args, **kwargs).__aiter__()
        return await self._cursor.__anext__()


@on_mongodb
@pytest.mark.parametrize("when", ["before its write", "between its reads", "counted after it"])
async def test_a_client_append_racing_the_pass_is_counted_once(
    storage: MongoStorage, later: Callable[[timedelta], None], when: str
) -> None:
    """event_counting counts a batch into its session in an update guarded on event_count as
    read; the pass's count is guarded on the same (and counts a batch under way only once
    counted into the session): so a client's event 3, appended between the pass's read of the
    session and its write, or marked before it and counted after, is counted exactly once."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    await a_write_that_dies(storage, tenant, stay, BEFORE_THE_COUNT)
    later(PAST_THE_BOUND)

    async def append() -> None:
        await a_client_sends(storage, tenant, stay, 3)

    if when == "counted after it":  # stored by an append under way, not counted yet
        token = ObjectId()
        marked = {**event_documents.to_document(tenant.id, event(stay, 3)), "batch": token}
        await storage.db["events"].insert_one(marked)
        await pass_on(storage.db, tenant)
        await finish_batches(storage.db, tenant.id, [marked], NOW, OPEN)
    else:
        hooked = (
            Before(storage.db, "sessions", "update_one", append)
            if when == "before its write"
            else BeforeReadingEvents(storage.db, append)
        )
        await pass_on(hooked, tenant)
        assert await left(storage, tenant, stay) == Left(0, 3, 3, [])
        assert hooked.ran

    assert await left(storage, tenant, stay) == Left(0, 3, 3, [])


@on_mongodb
async def test_a_pass_that_another_finished_first_changes_nothing(
    storage: MongoStorage, later: Callable[[timedelta], None]
) -> None:
    """Two passes (two servers): one runs whole between the other's reads and its write, whose
    guard then fails; it reads again, finds nothing in flight, and the end state is one pass's."""
    tenant = await add_tenant(storage, "acme")
    unstored, uncounted = await two_dead_writes(storage, tenant)
    later(PAST_THE_BOUND)

    async def another_pass() -> None:
        await pass_on(storage.db, tenant)

    hooked = Before(storage.db, "sessions", "update_one", another_pass)
    await pass_on(hooked, tenant)

    assert await left(storage, tenant, unstored) == FINISHED_UNSTORED
    assert await left(storage, tenant, uncounted) == FINISHED_UNCOUNTED
    assert hooked.ran


@on_mongodb
async def test_passes_of_several_servers_at_once_finish_each_session_once(
    storage: MongoStorage, race: Race, later: Callable[[timedelta], None]
) -> None:
    """Three reapers (each its own client, all at once) over stays left by dead writes, each
    with a client's event counted after the ends: the same end state as one pass's."""
    tenant = await add_tenant(storage, "acme")
    stays = [await two_dead_writes(storage, tenant) for _ in range(3)]
    later(PAST_THE_BOUND)

    async def a_reaper(racer: MongoStorage) -> None:
        await reap(racer)

    await race(a_reaper, a_reaper, a_reaper)

    for unstored, uncounted in stays:
        assert await left(storage, tenant, unstored) == FINISHED_UNSTORED
        assert await left(storage, tenant, uncounted) == FINISHED_UNCOUNTED


@on_mongodb
async def test_ends_left_in_flight_before_the_stamps_are_finished_a_bound_later(
    storage: MongoStorage, later: Callable[[timedelta], None]
) -> None:
    """A session left with ends in flight by a version that did not stamp them (no entry of
    their write): the first pass stamps them (gives them an entry: its writer may be alive), a
    pass past the bound after it finishes it."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    await a_write_that_dies(storage, tenant, stay, BEFORE_THE_COUNT)
    key = {"tenant_id": tenant.id, "id": stay.id}
    await storage.db["sessions"].update_one(key, {"$unset": {WRITES: ""}})

    later(PAST_THE_BOUND)
    await reap(storage)
    assert await left(storage, tenant, stay) == Left(2, 0, 2, [], stamped=True)

    later(2 * PAST_THE_BOUND)
    await reap(storage)
    assert await left(storage, tenant, stay) == Left(0, 2, 2, [])


@on_mongodb
async def test_events_retention_deletes_between_the_passs_reads_still_count(
    storage: MongoStorage, later: Callable[[timedelta], None]
) -> None:
    """Retention's deleted events stay counted (Retention.delete_events: "their sessions keep
    the counts they added"), remembered on the session before they go: one deleted between the
    pass's read of the session and its read of the events is counted all the same (the pass's
    guard on deleted_events makes it read again), and is no gap."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    await a_write_that_dies(storage, tenant, stay, BEFORE_THE_COUNT)  # ends at minutes 31, 33
    later(PAST_THE_BOUND)

    async def retention() -> None:
        assert await storage.retention.delete_events(tenant.id, at(32), 100) == 1

    hooked = BeforeReadingEvents(storage.db, retention)
    await pass_on(hooked, tenant)

    assert await left(storage, tenant, stay) == Left(0, 2, 1, [])
    assert hooked.ran
