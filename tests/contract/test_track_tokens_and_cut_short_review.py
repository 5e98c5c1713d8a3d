"""Hostile review of 69aee1b (MongoDB: each track write's ends in flight carry its token; the
numbering is a pipeline form of the classic update) and 4ed6163 (SettlementCutShort: a first
charge whose entry write failed after its claim is told once, by the caller whose write failed).

Found: a track sid holding a dot is a path on MongoDB (`tracks.<sid>`), so a sid `a.b` is never
ended and one naming another track's field (`TR_cam.meter`) is never kept (section 1); a first
charge written whole by the reaper's batch is never told when a later session of the same batch
is cut short, or when the batch's read of what it claimed fails (section 3); a settlement cut
short answered 500 `internal_error`, not the 503 the commit promised its client (section 4; it
answers 503 since storage failures do)."""

import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
from bson import Decimal128, ObjectId
from litestar import Litestar, get
from litestar.testing import TestClient

import adapters.mongodb.credits
from adapters.mongodb import livekit
from adapters.mongodb.livekit import MongoTrackLog, _numbering, _update
from adapters.mongodb.storage import MongoStorage
from application.storage import SettlementCutShort
from domain.livekit import TrackReport, report_track
from domain.session import Charge, ChargeState, Session
from domain.tenants import Tenant
from entrypoints.http.errors import EXCEPTION_HANDLERS
from tests.contract.builders import NOW, OPEN, add_tenant, at, event, stored_session, wired
from tests.contract.races import Race
from tests.contract.test_archive import CAMERA
from tests.contract.test_charge_counting_review import KIOSK, reap_at, stale_kiosks
from tests.contract.test_charge_tally_review import (
    _DropsOnce,
    exit_at,
    first_charges_in_the_books,
    told_once_after,
)
from tests.contract.test_finished_room_sweep_review import reaping
from tests.contract.test_mongodb_export_pages_review import on_mongodb
from tests.contract.test_mongodb_track_ends_recovery import (
    PAST_THE_BOUND,
    Left,
    left,
    pass_on,
)
from tests.fakes import FakeClock, FakeTally

pytestmark = pytest.mark.anyio


def reports_of(sid: str) -> list[TrackReport]:
    return [
        CAMERA,
        TrackReport(sid, "video.seconds", at(31)),
        TrackReport(sid, "video.seconds", at(31), at(35)),
    ]


async def recorded(storage: Any, tenant: Tenant, stay: Session, sid: str) -> tuple[Any, ...]:
    """What the reports of CAMERA and of a track `sid` leave of the stay."""
    answers = [await storage.tracks.record(tenant.id, stay.id, r) for r in reports_of(sid)]
    s = await storage.sessions.get(tenant.id, stay.id)
    return answers, s.usage, s.event_count, s.max_sequence_no, s.event_gaps


# Every store: CAMERA 2 minutes, the second track 4; two ends each, no gap.
AS_EVERY_STORE: tuple[Any, ...] = ([True, False, True], {"video.seconds": 360}, 4, 4, [])


# --- 1. The pipeline's fields: what a track write stores ---------------------------------------


@pytest.mark.parametrize("sid", ["$x", "", "TR_ü/1:2 $", "x" * 150])
async def test_a_track_sid_without_a_dot_is_recorded_as_on_every_store(
    storage: Any, sid: str
) -> None:
    """LiveKit's track sid is the tenant's server's to choose (a signed webhook): whatever it
    is (a `$`, empty, long), the track is kept, ended and counted as any (the pipeline takes
    the sid as a literal, never as a field path or an operator)."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    assert await recorded(storage, tenant, stay, sid) == AS_EVERY_STORE
    assert [
        t.track_sid for t in await storage.tracks.tracks_ending_with_stay(tenant.id, stay.id)
    ] == []


@on_mongodb
async def test_a_track_sid_with_a_dot_is_recorded_as_on_every_store(storage: Any) -> None:
    """The same for a sid `a.b`: the other stores keep it, end it and count its 4 minutes."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    assert await recorded(storage, tenant, stay, "a.b") == AS_EVERY_STORE


@on_mongodb
async def test_a_track_sid_naming_another_tracks_field_writes_only_its_own(
    storage: Any,
) -> None:
    """A sid `TR_cam.meter` is a track of its own: TR_cam keeps its fields, and the stay is
    as on every store (on the emulator the write is dropped; on a real MongoDB, $set through
    a string field either fails or replaces TR_cam's meter with a document)."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    assert await recorded(storage, tenant, stay, "TR_cam.meter") == AS_EVERY_STORE
    document = await storage.db["sessions"].find_one({"id": stay.id})
    assert document["tracks"]["TR_cam"]["meter"] == "video.seconds"


def _start(usage: object, tracks_from: object, tracks_until: object) -> dict[str, Any]:
    document: dict[str, Any] = {"tenant_id": "t", "max_sequence_no": 7, "ends_in_flight": 0}
    for name, value in (
        ("usage", usage),
        ("tracks_from", tracks_from),
        ("tracks_until", tracks_until),
    ):
        if value is not None:
            document[name] = value
    return document


@on_mongodb
@pytest.mark.parametrize(
    "start",
    [
        _start(None, None, None),  # nothing yet
        _start({"video:seconds": Decimal128("1.5")}, at(20), at(50)),  # wider span, usage
        _start({"video:seconds": 7, "audio:seconds": Decimal128("2")}, at(32), at(32)),
    ],
    ids=["missing", "wider", "narrower"],
)
@pytest.mark.parametrize("settle_again", [False, True])
async def test_the_numbering_pipeline_stores_what_the_classic_update_stores(
    storage: MongoStorage, start: dict[str, Any], settle_again: bool
) -> None:
    """69aee1b: `_numbering` turns the update of a track write with ends ($set, $inc, $min,
    $max) into a pipeline. Both forms, applied to the same document, leave the same fields
    (usage as Decimal128 from a missing, Decimal128 or int meter; tracks_from/until from
    missing or either side; the charge reopened and its revision moved on), but for the
    pipeline's entry of the write (ends_writes), numbered from max_sequence_no as updated."""
    change = report_track(None, False, CAMERA)
    update = _update("tracks.TR_cam", change)
    if settle_again:
        update["$set"]["charge_state"] = ChargeState.PENDING.value
        update.setdefault("$inc", {})["charge_revision"] = 1
    sessions = storage.db["scratch"]  # (no index: two copies of one document)
    classic, pipeline = ObjectId(), ObjectId()
    await sessions.insert_many([{**start, "_id": classic}, {**start, "_id": pipeline}])
    await sessions.update_one({"_id": classic}, update)
    token = ObjectId()
    await sessions.update_one({"_id": pipeline}, _numbering(update, token, "TR_cam", 2))

    one = await sessions.find_one({"_id": classic}, {"_id": 0})
    other = await sessions.find_one({"_id": pipeline}, {"_id": 0})
    assert one is not None and other is not None
    [entry] = other.pop("ends_writes")
    assert one == other
    assert (entry["token"], entry["track"], entry["first"], entry["last"], entry["ends"]) == (
        token,
        "TR_cam",
        8,
        9,
        2,
    )


class Counted:
    """A database counting the calls made on its collections."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def __getitem__(self, name: str) -> Any:
        collection, outer = self._db[name], self

        class _Collection:
            def __getattr__(self, method: str) -> Any:
                real = getattr(collection, method)
                if not callable(real):
                    return real

                def call(*args: Any, **kwargs: Any) -> Any:
                    outer.calls.append(f"{name}.{method}")
                    return real(*args, **kwargs)

                return call

        return _Collection()


@on_mongodb
async def test_a_track_write_with_ends_is_still_four_round_trips(storage: MongoStorage) -> None:
    """69aee1b: "Round trips of a track write unchanged (4)": read, numbering (with its entry),
    insert, count (pulling its entry); and the stay holds what it should."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    counted = Counted(storage.db)
    assert await MongoTrackLog(counted).record(tenant.id, stay.id, CAMERA)  # type: ignore[arg-type]
    assert counted.calls == [
        "sessions.find_one",
        "sessions.find_one_and_update",
        "events.insert_many",
        "sessions.update_one",
    ]
    assert await left(storage, tenant, stay) == Left(0, 2, 2, [])


# --- 2. Exact counts whatever interleaves ------------------------------------------------------


def track(n: int) -> TrackReport:
    return TrackReport(f"TR_{n}", "video.seconds", at(31 + n / 10), at(33 + n / 10))


@on_mongodb
@pytest.mark.parametrize("attempt", range(3))
@pytest.mark.parametrize("bound", ["within", "past"])
async def test_track_writes_appends_retention_and_passes_at_once_count_each_event_once(
    storage: MongoStorage,
    race: Race,
    monkeypatch: pytest.MonkeyPatch,
    attempt: int,
    bound: str,
) -> None:
    """Real concurrency, each racer its own client: two live track writes of two tracks of
    the stay, a client's batches (whose numbers collide with the tracks'), retention deleting
    the first events and two reaper passes, all at once (and, past the bound, every write's
    entry is a dead one's to the passes: each write that finds its entry taken recounts). Then
    the stay counts each event stored or deleted once, nothing stays in flight, and its gaps
    are exactly the numbers neither stored nor deleted (those the client never sent). (Weak:
    the window it hopes to hit is narrow; test_mongodb_track_ends_recovery forces them.)"""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    if bound == "past":  # the passes' clock only (racers 4 and 5): the writes' stamps are now
        passes = {"racer-4", "racer-5"}

        def clock() -> datetime:
            ahead = threading.current_thread().name in passes
            return datetime.now(UTC) + (PAST_THE_BOUND if ahead else timedelta(0))

        monkeypatch.setattr(livekit, "wall_clock", clock)

    def writes(n: int) -> Any:
        async def call(s: MongoStorage) -> None:
            await s.tracks.record(tenant.id, stay.id, track(n))

        return call

    async def appends(s: MongoStorage) -> None:
        for n in (1, 2, 3, 5, 7):
            await s.events.append(tenant.id, [(0, event(stay, n))], NOW, OPEN)

    async def retention(s: MongoStorage) -> None:
        await s.retention.delete_events(tenant.id, at(30.05), 100)

    async def a_pass(s: MongoStorage) -> None:
        for _ in range(3):
            await pass_on(s.db, tenant)

    await race(writes(1), writes(2), appends, retention, a_pass, a_pass)
    monkeypatch.undo()
    await pass_on(storage.db, tenant)

    document = await storage.db["sessions"].find_one({"id": stay.id})
    assert document is not None
    numbers = {e["sequence_no"] async for e in storage.db["events"].find({"session_id": stay.id})}
    s = await storage.sessions.get(tenant.id, stay.id)
    assert s is not None
    deleted = {n for first, last in s.deleted_events for n in range(first, last + 1)}
    assert (document["ends_in_flight"], document.get("ends_writes")) == (0, [])
    assert s.event_count == len(numbers - deleted) + len(deleted), (s, numbers)
    missing = set(range(1, s.max_sequence_no + 1)) - numbers - deleted
    assert {n for first, last in s.event_gaps for n in range(first, last + 1)} == missing


# --- 3. SettlementCutShort: each first charge told once ----------------------------------------


@on_mongodb
async def test_an_adjustment_cut_short_is_not_told_as_a_first_charge(
    storage: Any, tenant: Tenant, tally: FakeTally
) -> None:
    """ChargeTally hears each session's first charge, never an adjustment: the reaper charges
    a timed-out kiosk (told), the client's exit then corrects its end and the adjustment's
    entry write fails after its claim (SettlementCutShort); the retry and the reaper finish
    it. The tally still adds up to the ledger's first charges."""
    (session,) = await stale_kiosks(storage, tenant, 1)
    await reap_at(storage, 95)
    assert len(tally.told) == 1
    drops = _DropsOnce(adapters.mongodb.credits.finish_due)
    with (
        patch.object(adapters.mongodb.credits, "finish_due", drops),
        pytest.raises(SettlementCutShort) as cut,
    ):
        await exit_at(tenant, session, 20)(storage)
    assert drops.failed == 1 and session.id in cut.value.charges
    await exit_at(tenant, session, 20)(storage)
    await reap_at(storage, 100)

    written = await first_charges_in_the_books(storage, tenant, ["k0"], [session])
    assert tally.total == written, (tally.told, written)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.charge.credits == 20 * KIOSK.credits_per_minute


async def ended_pending(storage: Any, tenant: Tenant, n: int) -> list[Session]:
    """`n` kiosks timed out by a reaper's run whose settlement failed before any claim: ended,
    their first charges pending."""

    class _Refuses:
        def __init__(self, ledger: Any) -> None:
            self._ledger = ledger

        def __getattr__(self, name: str) -> Any:
            return getattr(self._ledger, name)

        async def settle_many(self, *args: Any) -> Any:
            raise ConnectionError("down before any claim")

    sessions = await stale_kiosks(storage, tenant, n)
    failed = await reaping(storage, 95, ledger=_Refuses(storage.ledger))
    assert failed.failures
    read = [await storage.sessions.get(tenant.id, s.id) for s in sessions]
    assert all(s.charge_state is ChargeState.PENDING and s.charge is None for s in read)
    return read


@on_mongodb
async def test_a_batch_whose_later_session_is_cut_short_tells_the_charges_it_wrote(
    storage: Any, tenant: Tenant, tally: FakeTally
) -> None:
    """The reaper's batch (DeductCredits.settle_many) of A and B: A was corrected since it was
    read (its revision moved on), so the bulk claim leaves it and charges B whole; A is then
    settled on its own, and its entry write fails after its claim. B's first charge, in the
    books, must be told (by this run: the next finds it charged), and A's once."""
    a, b = await ended_pending(storage, tenant, 2)
    key = {"tenant_id": tenant.id, "id": a.id}
    await storage.db["sessions"].update_one(key, {"$inc": {"charge_revision": 1}})

    deduct = wired(storage, FakeClock(at(96))).use_cases().deduct_credits()
    drops = _DropsOnce(adapters.mongodb.credits.finish_due)
    with (
        patch.object(adapters.mongodb.credits, "finish_due", drops),
        pytest.raises(SettlementCutShort),
    ):
        await deduct.settle_many([a, b])
    await reap_at(storage, 100)
    await reap_at(storage, 101)

    written = await first_charges_in_the_books(storage, tenant, ["k0", "k1"], [a, b])
    assert tally.total == written, (tally.told, written)


class _ReadOfClaimsFails:
    """The ledger's sessions collection, whose read of what a batch claimed fails once."""

    def __init__(self, collection: Any) -> None:
        self._collection, self.failed = collection, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    def find(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        if "claimed_by" in query and not self.failed:
            self.failed += 1
            raise ConnectionError("the connection dropped")
        return self._collection.find(query, *args, **kwargs)


@on_mongodb
async def test_a_batch_whose_read_of_its_claims_fails_tells_its_first_charges(
    storage: Any, tenant: Tenant, tally: FakeTally, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claims stand whatever fails after them (SettlementCutShort's own words): a reaper's
    batch whose claims are made and whose read of them then fails reports the failure, the
    next run finishes the notes, and each first charge in the books is told once."""
    sessions = await stale_kiosks(storage, tenant, 3)
    reads = _ReadOfClaimsFails(storage.ledger._sessions)
    monkeypatch.setattr(storage.ledger, "_sessions", reads)
    first = await reap_at(storage, 95)
    assert reads.failed == 1
    await told_once_after(first, storage, tenant, tally, sessions)


@on_mongodb
async def test_racing_exits_of_a_session_cut_short_tell_its_first_charge_once(
    storage: Any, tenant: Tenant, tally: FakeTally, race: Race
) -> None:
    """Two retries of one exit at once (each its own client) after the first was cut short
    (told): the session is charged, its due note finished by one of them, and told nothing
    more; nor by the reaper after them."""
    (session,) = await stale_kiosks(storage, tenant, 1)
    with (
        patch.object(
            adapters.mongodb.credits,
            "finish_due",
            _DropsOnce(adapters.mongodb.credits.finish_due),
        ),
        pytest.raises(SettlementCutShort),
    ):
        await exit_at(tenant, session, 20)(storage)
    assert len(tally.told) == 1
    await race(exit_at(tenant, session, 20), exit_at(tenant, session, 20))
    await reap_at(storage, 100)

    written = await first_charges_in_the_books(storage, tenant, ["k0"], [session])
    assert tally.told == [written]


# --- 4. The client's answer ---------------------------------------------------------------------


# Found: 4ed6163's message said "the client still gets its 503"; HTTP then answered every
# StorageError 500 internal_error. It answers them 503 now, and so this one.
def test_an_exit_whose_settlement_was_cut_short_answers_as_any_storage_error() -> None:
    """HTTP answers a StorageError 503 `unavailable` with Retry-After, without the driver's
    message; SettlementCutShort is one, and is answered so (the client retries its exit)."""
    charge = Charge(60, 0)

    @get("/exit", sync_to_thread=False)
    def cut_short() -> None:
        raise SettlementCutShort("connection dropped", {"s": charge})

    app = Litestar([cut_short], exception_handlers=EXCEPTION_HANDLERS)
    with TestClient(app) as client:
        answer = client.get("/exit")
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "unavailable", answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    assert "connection dropped" not in answer.text
