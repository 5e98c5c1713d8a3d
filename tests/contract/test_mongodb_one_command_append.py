"""What the MongoDB append's one command (adapters/mongodb/events.py: insert, count, unmark in
one ordered bulkWrite) has to prove besides the contract suite: cut short anywhere, it leaves
what a crash between two of the steps of event_counting.py leaves, and whoever finishes it
counts each event exactly once; stopped at a session that changed since it was read, or at a
session erased meanwhile, the long way decides again and nothing is counted twice, lost or
invented; a server without the bulkWrite command (before MongoDB 8.0) gets the same results."""

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pymongo import AsyncMongoClient, InsertOne, UpdateOne
from pymongo.errors import ClientBulkWriteException, InvalidOperation

from adapters.mongodb import event_counting
from adapters.mongodb.storage import MongoStorage
from domain.events import Event, EventRejection
from domain.session import Exit
from domain.staleness import Staleness
from domain.tenants import Tenant
from domain.usage import Usage
from tests.contract.builders import NOW, OPEN, SHUT, add_tenant, at, stored_session

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)

DAY = timedelta(days=1)
BulkWrite = Callable[..., Any]


@pytest.fixture
async def tenant(mongodb: MongoStorage) -> Tenant:
    return await add_tenant(mongodb)


def _batch(session_id: str, first: int = 1) -> list[tuple[int, Event]]:
    meters: Usage = {"tokens": 10, "cost": Decimal("0.1")}
    return [(i, Event(session_id, first + i, "tick", at(1), meters=meters)) for i in range(3)]


def instead_of_the_first_bulk_write(
    monkeypatch: pytest.MonkeyPatch, first: Callable[[BulkWrite, Any, list[Any]], Any]
) -> list[int]:
    """Run `first(real_bulk_write, client, writes)` in place of the next client-level bulk
    write; later ones run as they are. Returns a list that grows by one per call."""
    real = AsyncMongoClient.bulk_write
    calls: list[int] = []

    async def bulk_write(client: Any, writes: list[Any], **options: Any) -> Any:
        calls.append(len(writes))
        if len(calls) == 1:
            return await first(lambda w: real(client, w, **options), client, writes)
        return await real(client, writes, **options)

    monkeypatch.setattr(AsyncMongoClient, "bulk_write", bulk_write)
    return calls


def cut_short(monkeypatch: pytest.MonkeyPatch, kept: tuple[type, ...]) -> None:
    """The next append's command is cut short (the server failed over, the process died):
    only its writes of the types `kept` are done. Its marks count as stale at once (instead of
    after STALE_AFTER)."""

    async def cut(write: BulkWrite, client: Any, writes: list[Any]) -> None:
        await write([w for w in writes if isinstance(w, kept)])
        raise ConnectionError("the command was cut short")

    instead_of_the_first_bulk_write(monkeypatch, cut)
    monkeypatch.setattr(event_counting, "STALE_AFTER", timedelta(seconds=-1))


AFTER_THE_INSERTS = (InsertOne,)
AFTER_THE_COUNTS = (InsertOne, UpdateOne)  # the marks and the token are removed by UpdateMany


@on_mongodb
@pytest.mark.parametrize("kept", [AFTER_THE_INSERTS, AFTER_THE_COUNTS], ids=["inserts", "counts"])
@pytest.mark.parametrize("finisher", ["a retry", "the exit", "the reaper"])
async def test_a_command_cut_short_is_finished_and_counted_exactly_once(
    mongodb: MongoStorage,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    kept: tuple[type, ...],
    finisher: str,
) -> None:
    # Cut after its inserts, nothing is counted yet; after its counts, the session has counted
    # them and holds the token, so a finisher must not count them again. Either way whoever
    # comes next finishes the batch: its usage once, no marks and no token left.
    session = await stored_session(mongodb, tenant)
    cut_short(monkeypatch, kept)
    with pytest.raises(ConnectionError):
        await mongodb.events.append(tenant.id, _batch(session.id), NOW, OPEN)

    if finisher == "a retry":
        retried = await mongodb.events.append(tenant.id, _batch(session.id), NOW, OPEN)
        assert (retried.inserted, retried.duplicates) == (0, 3)
    elif finisher == "the exit":
        await mongodb.sessions.close(tenant.id, session.id, Exit(at(5)), frozenset(), NOW, SHUT)
    else:
        await mongodb.sessions.time_out_idle(
            tenant.id, Staleness(at(60)), 10, frozenset(), NOW, OPEN
        )

    stored = await mongodb.sessions.get(tenant.id, session.id)
    assert stored is not None
    assert stored.usage == {"tokens": 30, "cost": Decimal("0.3")}
    assert stored.event_count == 3
    assert stored.is_active == (finisher == "a retry")
    assert not await mongodb.db["events"].count_documents({"batch": {"$exists": True}})
    document = await mongodb.db["sessions"].find_one({"id": session.id})
    assert document is not None and not document.get("counting")


@on_mongodb
async def test_a_command_stopped_at_a_session_changed_since_it_was_read_counts_it_the_long_way(
    mongodb: MongoStorage, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch's first session was ended by the reaper (still pending its charge), so counting
    # its events moves its end and leaves it to be settled again; the second gets a heartbeat
    # between the append's read and its command. The command counts the first, stops at the
    # second's count, and the long way counts the second on what it is now: each once, and
    # the first still said to be repriced.
    reaped = await stored_session(mongodb, tenant)
    await mongodb.sessions.time_out_idle(
        tenant.id, Staleness(at(0.5)), 10, frozenset({"webinar"}), at(10), DAY
    )
    active = await stored_session(mongodb, tenant)
    stopped: list[int] = []

    async def heartbeat_first(write: BulkWrite, client: Any, writes: list[Any]) -> Any:
        await mongodb.sessions.heartbeat(tenant.id, active.id, at(2))
        try:
            return await write(writes)
        except ClientBulkWriteException as error:
            stopped.append(error.details["writeErrors"][0]["idx"])
            raise

    instead_of_the_first_bulk_write(monkeypatch, heartbeat_first)
    batch = [*_batch(reaped.id), *((i + 3, e) for i, e in _batch(active.id))]

    outcome = await mongodb.events.append(tenant.id, batch, at(10), DAY)

    assert stopped == [len(batch) + 1]  # the second count, after the inserts and the first
    assert (outcome.inserted, outcome.duplicates, outcome.rejections) == (6, 0, [])
    assert outcome.repriced == {reaped.id}
    for session_id in (reaped.id, active.id):
        stored = await mongodb.sessions.get(tenant.id, session_id)
        assert stored is not None
        assert (stored.usage, stored.event_count) == ({"tokens": 30, "cost": Decimal("0.3")}, 3)
    now_active = await mongodb.sessions.get(tenant.id, active.id)
    assert now_active is not None and now_active.last_seen_at == at(2)
    assert not await mongodb.db["events"].count_documents({"batch": {"$exists": True}})


@on_mongodb
async def test_a_session_erased_before_the_command_is_not_invented_by_its_count(
    mongodb: MongoStorage, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A count is an upsert only so that a session changed since it was read stops the command;
    # it never inserts: a session deleted meanwhile stays deleted, and its events are refused.
    session = await stored_session(mongodb, tenant)

    async def erase_first(write: BulkWrite, client: Any, writes: list[Any]) -> Any:
        await mongodb.db["sessions"].delete_one({"id": session.id})
        return await write(writes)

    instead_of_the_first_bulk_write(monkeypatch, erase_first)

    outcome = await mongodb.events.append(tenant.id, _batch(session.id), NOW, OPEN)

    assert outcome.inserted == 0
    assert outcome.rejections == [EventRejection(i, "session_not_found") for i in range(3)]
    assert await mongodb.db["sessions"].count_documents({}) == 0
    assert await mongodb.db["events"].count_documents({}) == 0


@on_mongodb
async def test_a_server_without_the_bulk_write_command_takes_the_long_way(
    mongodb: MongoStorage, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pymongo refuses a client-level bulk write to a server before MongoDB 8.0 without sending
    # anything; the append then stores and counts a step per command, from then on.
    session = await stored_session(mongodb, tenant)

    async def before_8_0(write: BulkWrite, client: Any, writes: list[Any]) -> Any:
        raise InvalidOperation("MongoClient.bulk_write requires MongoDB server version 8.0+.")

    calls = instead_of_the_first_bulk_write(monkeypatch, before_8_0)

    first = await mongodb.events.append(tenant.id, _batch(session.id), NOW, OPEN)
    second = await mongodb.events.append(tenant.id, _batch(session.id, first=4), NOW, OPEN)
    again = await mongodb.events.append(tenant.id, _batch(session.id), NOW, OPEN)

    assert len(calls) == 1
    assert [(o.inserted, o.duplicates) for o in (first, second, again)] == [(3, 0), (3, 0), (0, 3)]
    stored = await mongodb.sessions.get(tenant.id, session.id)
    assert stored is not None
    assert (stored.usage, stored.event_count) == ({"tokens": 60, "cost": Decimal("0.6")}, 6)
