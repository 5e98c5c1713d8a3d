"""What only the MongoDB family has to prove: without transactions, an append that dies between
storing its events and counting them loses nothing and counts nothing twice, and what it left is
decided on the clock and window of whoever finishes it; the reaper's query only narrows what the
domain decides; indexes are created idempotently; handled webhook ids expire by a TTL index."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pymongo import InsertOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import NetworkTimeout

import adapters.mongodb.credits
import adapters.mongodb.sessions
from adapters.mongodb import event_counting
from adapters.mongodb.deleted_events import JOINED_PAST
from adapters.mongodb.documents import Document
from adapters.mongodb.indexes import INDEXES
from adapters.mongodb.ledger_turns import LedgerTurns
from adapters.mongodb.retention import MongoRetention
from adapters.mongodb.storage import MongoStorage
from application.credits.ports import LedgerHeld
from application.sessions.record_exit import RecordExitCommand
from domain.erasure import Forgetting, Pseudonyms, is_pseudonym
from domain.events import Event
from domain.livekit import WEBHOOK_MEMORY
from domain.session import Exit, Session
from domain.staleness import Staleness
from domain.tenants import Tenant
from domain.usage import Usage
from tests.contract.builders import (
    NOW,
    OPEN,
    SHUT,
    add_tenant,
    at,
    claimed_by_a_settlement_that_died,
    stored_session,
    wired,
)
from tests.contract.dying_appends import next_append_dies
from tests.contract.races import Proxy, Race
from tests.contract.scripted import Script
from tests.fakes import FakeClock
from tests.servers import MongoServer

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)

DAY = timedelta(days=1)
Counted = tuple[datetime, int, Usage]  # a session's ended_at, event_count and usage
COUNTED: Counted = (at(1), 3, {"tokens": 30, "cost": Decimal("0.3")})  # the end moved to them
LATE: Counted = (at(0), 0, {})  # the reaper's end stands, the events are deleted


@pytest.fixture
async def tenant(mongodb: MongoStorage) -> Tenant:
    return await add_tenant(mongodb)


@pytest.fixture
def dying_append(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next append dies after its events are stored, before they are counted (its one
    command cut short after the inserts); its marks count as stale at once (instead of after
    STALE_AFTER)."""
    next_append_dies(monkeypatch, lambda write: isinstance(write, InsertOne))
    monkeypatch.setattr(event_counting, "STALE_AFTER", timedelta(seconds=-1))


@pytest.fixture
async def after_a_dead_append(mongodb: MongoStorage, tenant: Tenant, dying_append: None) -> str:
    """A session whose batch of three events was stored by an append that then died."""
    session = await stored_session(mongodb, tenant)
    with pytest.raises(ConnectionError):
        await mongodb.events.append(tenant.id, _batch(session.id), NOW, OPEN)
    return session.id


@pytest.fixture
async def reaped_then_a_dead_append(
    mongodb: MongoStorage, tenant: Tenant, dying_append: None
) -> str:
    """A session the reaper ended at minute 0, and a batch of three events dated minute 1 (after
    that end, so taken within a day of it) stored at minute 10 by an append that then died."""
    session = await stored_session(mongodb, tenant)
    await mongodb.sessions.time_out_idle(tenant.id, Staleness(at(5)), 10, frozenset(), at(10), DAY)
    with pytest.raises(ConnectionError):
        await mongodb.events.append(tenant.id, _batch(session.id), at(10), DAY)
    return session.id


def _batch(session_id: str) -> list[tuple[int, Event]]:
    return [
        (i, Event(session_id, i + 1, "tick", at(1), meters={"tokens": 10, "cost": Decimal("0.1")}))
        for i in range(3)
    ]


@on_mongodb
async def test_an_append_that_finished_leaves_no_batch_marks_behind(
    mongodb: MongoStorage, tenant: Tenant
) -> None:
    # The marks are only there while an append counts its batch: left behind, the sessions'
    # lists of counted tokens would grow with every batch.
    sessions = [await stored_session(mongodb, tenant) for _ in range(2)]
    await mongodb.events.append(
        tenant.id, [(i, e) for s in sessions for i, e in _batch(s.id)], NOW, OPEN
    )

    marked = await mongodb.db["events"].count_documents({"batch": {"$exists": True}})
    documents = await mongodb.db["sessions"].find({"tenant_id": tenant.id}).to_list(None)
    assert marked == 0
    assert [d.get("counting") or [] for d in documents] == [[], []]
    assert [d["event_count"] for d in documents] == [3, 3]


@on_mongodb
async def test_a_retried_batch_counts_what_a_dead_append_stored_exactly_once(
    mongodb: MongoStorage, tenant: Tenant, after_a_dead_append: str
) -> None:
    first = await mongodb.events.append(tenant.id, _batch(after_a_dead_append), NOW, OPEN)
    again = await mongodb.events.append(tenant.id, _batch(after_a_dead_append), NOW, OPEN)

    assert (first.inserted, first.duplicates) == (0, 3)
    assert (again.inserted, again.duplicates) == (0, 3)
    stored = await mongodb.sessions.get(tenant.id, after_a_dead_append)
    assert stored is not None
    assert stored.usage == {"tokens": 30, "cost": Decimal("0.3")}
    assert (stored.event_count, stored.max_sequence_no) == (3, 3)


@on_mongodb
async def test_concurrent_retries_of_a_batch_a_dead_append_stored_count_it_once(
    mongodb: MongoStorage, tenant: Tenant, after_a_dead_append: str, race: Race
) -> None:
    # Each retry finds the dead append's marks and finishes its counting: one of them counts
    # the batch, and none counts it again, even one that read the marks before another
    # finisher removed them.
    retry = _batch(after_a_dead_append)

    outcomes = await race(*[lambda s: s.events.append(tenant.id, retry, NOW, OPEN)] * 16)

    assert [(o.inserted, o.duplicates) for o in outcomes] == [(0, 3)] * 16
    stored = await mongodb.sessions.get(tenant.id, after_a_dead_append)
    assert stored is not None
    assert stored.usage == {"tokens": 30, "cost": Decimal("0.3")}
    assert stored.event_count == 3


@on_mongodb
async def test_closing_counts_what_a_dead_append_stored_before_the_session_ends(
    mongodb: MongoStorage, tenant: Tenant, after_a_dead_append: str
) -> None:
    closed, _ = await mongodb.sessions.close(
        tenant.id, after_a_dead_append, Exit(at(5), usage={"tokens": 1}), frozenset(), NOW, SHUT
    )

    assert closed.usage == {"tokens": 31, "cost": Decimal("0.3")}
    assert closed.event_count == 3


@on_mongodb
async def test_the_reaper_counts_what_a_dead_append_stored_before_timing_sessions_out(
    mongodb: MongoStorage, tenant: Tenant, after_a_dead_append: str
) -> None:
    (timed_out,) = await mongodb.sessions.time_out_idle(
        tenant.id, Staleness(at(60)), 10, frozenset(), NOW, OPEN
    )

    assert timed_out.usage == {"tokens": 30, "cost": Decimal("0.3")}


@on_mongodb
@pytest.mark.parametrize(
    ("finisher", "now", "expected"),
    [("the reaper", at(20), COUNTED), ("a retry", at(20), COUNTED), ("the reaper", NOW, LATE)],
)
async def test_what_a_dead_append_left_is_decided_on_the_finishers_clock_and_window(
    mongodb: MongoStorage,
    tenant: Tenant,
    reaped_then_a_dead_append: str,
    finisher: str,
    now: datetime,
    expected: Counted,
) -> None:
    # As any store decides a batch on its append's clock and window: at minute 20 the events
    # are within a day of the reaper's end and move it; a year later they are late.
    session_id = reaped_then_a_dead_append
    if finisher == "the reaper":
        await mongodb.sessions.time_out_idle(tenant.id, Staleness(at(5)), 10, frozenset(), now, DAY)
    else:
        await mongodb.events.append(tenant.id, _batch(session_id), now, DAY)

    stored = await mongodb.sessions.get(tenant.id, session_id)
    assert stored is not None
    assert (stored.ended_at, stored.event_count, stored.usage) == expected
    logged = await mongodb.events.find(tenant.id, session_id, limit=10)
    assert len(logged) == stored.event_count


@on_mongodb
async def test_the_reapers_query_only_narrows_the_domain_decides_what_is_stale(
    mongodb: MongoStorage, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were the query broader than Staleness.is_stale, a session seen after its cutoff would
    # still not be closed.
    stale = await stored_session(mongodb, tenant)
    fresh = await stored_session(mongodb, tenant, minutes=8)
    monkeypatch.setattr(adapters.mongodb.sessions, "_stale", lambda staleness: {})

    closed = await mongodb.sessions.time_out_idle(
        tenant.id, Staleness(at(5)), 10, frozenset(), NOW, OPEN
    )

    assert [s.id for s in closed] == [stale.id]
    fresh_now = await mongodb.sessions.get(tenant.id, fresh.id)
    assert fresh_now is not None and fresh_now.is_active


@on_mongodb
async def test_creating_the_indexes_again_changes_nothing(mongodb: MongoStorage) -> None:
    await mongodb.migrate()
    await mongodb.migrate()

    for collection, indexes in INDEXES.items():
        names = {i["name"] async for i in await mongodb.db[collection].list_indexes()}
        assert {i.document["name"] for i in indexes} <= names


@on_mongodb
async def test_handled_webhook_ids_expire_by_a_ttl_index(mongodb: MongoStorage) -> None:
    indexes = {i["name"]: i async for i in await mongodb.db["webhooks"].list_indexes()}

    ttl = indexes["ttl_webhooks_received"]
    assert ttl["expireAfterSeconds"] == WEBHOOK_MEMORY.total_seconds()
    assert list(ttl["key"]) == ["received_at"]


def test_a_database_of_its_own_keeps_the_servers_options() -> None:
    server = MongoServer()
    server.url = "mongodb://user:secret@db1:27017,db2:27017/admin?replicaSet=rs0"

    assert server.database_url("test_1") == (
        "mongodb://user:secret@db1:27017,db2:27017/test_1?replicaSet=rs0"
    )


async def pending_its_charge(mongodb: MongoStorage, tenant: Tenant) -> Session:
    """user-1's counseling session, closed at minute 3 and pending its charge."""
    session = await stored_session(mongodb, tenant, kind="counseling")
    rated = frozenset({"counseling"})
    await mongodb.sessions.close(tenant.id, session.id, Exit(at(3)), rated, NOW, SHUT)
    return session


@on_mongodb
async def test_a_settlement_that_died_after_its_claim_is_finished_by_the_next_one(
    mongodb: MongoStorage, tenant: Tenant
) -> None:
    # The claim marks the session charged and notes the entry it owes the ledger; the process
    # dies before writing it. The next settlement of the session writes it, once.
    session = await pending_its_charge(mongodb, tenant)
    await claimed_by_a_settlement_that_died(mongodb, tenant.id, session.id)

    assert await mongodb.ledger.settle(tenant.id, session.id, 0, 6, at(11)) is None
    entries = await mongodb.ledger.entries(tenant.id, "user-1", limit=10)
    assert [(e.amount, e.created_at) for e in entries] == [(-6, at(10))]
    assert (await mongodb.ledger.balance(tenant.id, "user-1")).balance == -6


@on_mongodb
async def test_a_settlement_that_died_before_clearing_its_note_is_finished_without_copies(
    mongodb: MongoStorage, tenant: Tenant
) -> None:
    # The process wrote the entry and the alert (the charge takes user-1 below 0), then died
    # before clearing the note. The next settlement finds them written: nothing twice, and
    # the note no longer stands in the way.
    session = await pending_its_charge(mongodb, tenant)
    await claimed_by_a_settlement_that_died(mongodb, tenant.id, session.id, written=True)

    assert await mongodb.ledger.settle(tenant.id, session.id, 0, 6, at(11)) is None
    entries = await mongodb.ledger.entries(tenant.id, "user-1", limit=10)
    assert [(e.amount, e.created_at) for e in entries] == [(-6, at(10))]
    assert [a.kind for a in await mongodb.ledger.alerts(tenant.id, 10)] == ["negative_balance"]
    stored = await mongodb.sessions._db["sessions"].find_one({"id": session.id})
    assert stored is not None and stored["due"] is None, stored


@on_mongodb
async def test_a_subjects_turn_held_by_a_settlement_that_died_is_taken_once_its_lease_ends(
    mongodb: MongoStorage, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Settlements of a subject take turns through a document that the holder deletes when done;
    # one that died left it. Until its lease ends, a settlement of the subject waits for it,
    # then claims nothing (LedgerHeld: the reaper's); after, it takes the turn.
    monkeypatch.setattr(adapters.mongodb.credits, "SETTLEMENT_WAIT_SECONDS", 0.2)
    session = await pending_its_charge(mongodb, tenant)
    turns = mongodb.db["ledger_turns"]
    died = {"tenant_id": tenant.id, "subject_id": "user-1", "holder": "a process that died"}
    await turns.insert_one({**died, "held_until": datetime.now(UTC) + timedelta(minutes=1)})

    with pytest.raises(LedgerHeld):
        await mongodb.ledger.settle(tenant.id, session.id, 0, 6, at(10))
    await turns.update_one(died, {"$set": {"held_until": datetime.now(UTC)}})
    charge = await mongodb.ledger.settle(tenant.id, session.id, 0, 6, at(11))

    assert charge is not None and (charge.credits, charge.balance_after) == (6, -6)
    assert await turns.count_documents({}) == 0  # given back


@on_mongodb
async def test_a_turn_the_service_took_and_never_gave_back_is_taken_once_its_lease_ends(
    mongodb: MongoStorage, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As above, the dead holder's turn taken by the service itself (LedgerTurns, its lease
    # short here): the turn it wrote must carry when its lease ends (mutation testing found
    # that nothing held the service to writing it).
    monkeypatch.setattr(adapters.mongodb.credits, "SETTLEMENT_WAIT_SECONDS", 0.05)
    session = await pending_its_charge(mongodb, tenant)

    async def dies(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the process died")

    lease = timedelta(seconds=1)
    with monkeypatch.context() as dying, pytest.raises(ConnectionError):
        dying.setattr(AsyncCollection, "delete_many", dies)  # its turn is never given back
        async with LedgerTurns(mongodb.db).held(tenant.id, {"user-1"}, lease=lease) as held:
            assert held == {"user-1"}
    with pytest.raises(LedgerHeld):
        await mongodb.ledger.settle(tenant.id, session.id, 0, 6, at(10))
    await asyncio.sleep(lease.total_seconds())
    charge = await mongodb.ledger.settle(tenant.id, session.id, 0, 6, at(11))

    assert charge is not None and (charge.credits, charge.balance_after) == (6, -6)


@on_mongodb
async def test_a_batch_takes_every_free_turn_past_one_another_holds_and_holds_them(
    mongodb: MongoStorage, tenant: Tenant
) -> None:
    # A batch (waiting for none) takes the turns free now, whatever their order: "ann" is held
    # by another, so it holds "bob" only, and holds it: no one else takes it meanwhile.
    turns = LedgerTurns(mongodb.db)
    async with turns.held(tenant.id, {"ann"}, wait_seconds=1) as another:
        assert another == {"ann"}
        async with turns.held(tenant.id, {"ann", "bob"}) as batch:
            assert batch == {"bob"}
            async with turns.held(tenant.id, {"bob"}) as meanwhile:
                assert meanwhile == set()


@on_mongodb
async def test_a_take_whose_reply_was_lost_leaves_no_turn_held(
    mongodb: MongoStorage, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A take whose write was made and whose reply never came (a timeout, a dropped connection)
    raises. The turn it took must not stay held until its lease runs out: the subject's
    settlements would wait for it and be refused for 30 s."""
    turns = LedgerTurns(mongodb.db)
    write = AsyncCollection.bulk_write

    async def made_then_lost(self: AsyncCollection[Document], *args: Any, **kwargs: Any) -> Any:
        await write(self, *args, **kwargs)
        raise NetworkTimeout("the reply never came")

    monkeypatch.setattr(AsyncCollection, "bulk_write", made_then_lost)
    with pytest.raises(NetworkTimeout):
        async with turns.held(tenant.id, {"ann"}, wait_seconds=1):
            pass
    monkeypatch.undo()

    async with turns.held(tenant.id, {"ann"}) as next_settlement:
        assert next_settlement == {"ann"}


@pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)
async def test_a_session_an_exit_changes_while_the_erasure_reads_it_is_erased_all_the_same(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The erasure reads Ana's session, then her exit gives it a reason before the erasure's
    guarded write (guarded so that of racing erasures one writes): the write misses. The
    session must be read again and erased, not skipped (it kept her id, and the charge its exit
    settled went to her ledger after the ledger had moved to her pseudonym)."""
    session = await stored_session(storage, tenant, subject_id="ana")
    exit_ = RecordExitCommand(tenant.id, session.id, at=at(5), reason="left")
    script = Script(monkeypatch)

    async def her_exit() -> None:
        await wired(storage, FakeClock(at(60))).use_cases().record_exit()(exit_)

    script.around(AsyncCollection, "update_one", "E", before=her_exit)
    forgetting = Forgetting(Pseudonyms(), subject_id="ana")

    done = await script.run(
        E=lambda: storage.erasure.erase_sessions(tenant.id, [session.id], forgetting)
    )

    stored = await storage.sessions.get(tenant.id, session.id)
    assert done["E"].sessions == 1, done
    assert stored.exit_reason is None and is_pseudonym(stored.subject_id), stored


async def _a_long_session(mongodb: MongoStorage, tenant: Tenant, events: int) -> Session:
    """A session with `events` events, a second apart (retention takes the oldest first)."""
    session = await stored_session(mongodb, tenant)
    batch = [(i, Event(session.id, i + 1, "tick", at(1 + i / 60))) for i in range(events)]
    await mongodb.events.append(tenant.id, batch, NOW, OPEN)
    return session


async def _ranges_held(mongodb: MongoStorage, tenant: Tenant, session_id: str) -> int:
    document = await mongodb.db["sessions"].find_one({"tenant_id": tenant.id, "id": session_id})
    assert document is not None
    return len(document["deleted_events"])


@on_mongodb
async def test_a_long_sessions_deleted_events_stay_a_few_ranges_in_its_document(
    mongodb: MongoStorage, tenant: Tenant
) -> None:
    """Retention deletes a long session's events a batch at a time, and each batch remembers
    its own range: they are joined as they come, so the document does not grow with the
    session's life."""
    session = await _a_long_session(mongodb, tenant, 100)

    held = []
    while await mongodb.retention.delete_events(tenant.id, at(1 + 99.5 / 60), 5):
        held.append(await _ranges_held(mongodb, tenant, session.id))

    assert len(held) == 20 and max(held) <= JOINED_PAST + 1, held
    stored = await mongodb.sessions.get(tenant.id, session.id)
    assert stored is not None
    assert (stored.deleted_events, stored.event_gaps) == ([(1, 100)], [])


@on_mongodb
async def test_deletions_racing_on_one_session_join_their_ranges_and_lose_none(
    mongodb: MongoStorage, tenant: Tenant, race: Race
) -> None:
    """Retention and the deletion of the session's resource delete its events at once, a few
    at a time, each on its own client: a join guarded on the ranges it read never drops a
    range the other pushed meanwhile (a lost range would read as a gap)."""
    session = await _a_long_session(mongodb, tenant, 200)

    async def retention(s: Any) -> None:
        while await s.retention.delete_events(tenant.id, NOW, 3):
            pass

    async def resource_deletion(s: Any) -> None:
        while await s.erasure.delete_events(tenant.id, [session.id], 4):
            pass

    await race(retention, resource_deletion, retention, resource_deletion)

    stored = await mongodb.sessions.get(tenant.id, session.id)
    assert stored is not None
    assert (stored.deleted_events, stored.event_gaps) == ([(1, 200)], [])


class PushedWhileJoining:
    """A database whose sessions collection, once a join has read the ranges (a find of the
    sessions holding many), lets `meanwhile` run before the join's rewrite: a deletion that
    pushes a range after the join read them."""

    def __init__(self, db: Any, meanwhile: Callable[[], Awaitable[Any]]) -> None:
        self._db, self._meanwhile = db, meanwhile
        self._joining = False  # the last find of the sessions was a join's
        self.ran = False

    def __getitem__(self, name: str) -> Any:
        collection = self._db[name]
        if name != "sessions":
            self._joining = False  # a deletion's next call begins with its events
            return collection
        outer = self

        class Sessions(Proxy):
            def find(self, query: Document, *args: Any, **kwargs: Any) -> Any:
                outer._joining = any(key.startswith("deleted_events.") for key in query)
                return collection.find(query, *args, **kwargs)

            async def bulk_write(self, writes: list[Any], **options: Any) -> Any:
                if outer._joining and not outer.ran:
                    outer.ran = True
                    await outer._meanwhile()
                return await collection.bulk_write(writes, **options)

        return Sessions(collection)


@on_mongodb
async def test_a_range_pushed_while_a_join_rewrites_the_ranges_is_kept(
    mongodb: MongoStorage, tenant: Tenant
) -> None:
    """Forced: retention deletes a session's events one at a time; as its ninth call joins the
    nine ranges, the deletion of the session's resource deletes the next three and pushes their
    range. The join was read before that push, so it writes nothing, and the range stays."""
    session = await _a_long_session(mongodb, tenant, 20)

    async def resource_deletion() -> None:
        assert await mongodb.erasure.delete_events(tenant.id, [session.id], 3) == 3

    db = PushedWhileJoining(mongodb.db, resource_deletion)
    retention = MongoRetention(db)  # type: ignore[arg-type]
    while await retention.delete_events(tenant.id, NOW, 1):
        pass

    assert db.ran
    stored = await mongodb.sessions.get(tenant.id, session.id)
    assert stored is not None
    assert (stored.deleted_events, stored.event_gaps) == ([(1, 20)], [])
