"""MongoDB's export has no snapshot (MongoTenantArchive._as_they_were): it reads a few sessions,
then their events, then the sessions again, and gives a session only when both reads agree.
Here a client's batch, or a retention run, lands exactly between the export's first read of the
sessions and its read of their events, on the MongoDB test server: the export reads the session
again and gives it as it became, with the events it then had. (The contract suite has writers
race an export freely: test_export_while_clients_write.)"""

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from adapters.mongodb import archive
from adapters.mongodb.archive import READS, MongoTenantArchive
from adapters.mongodb.documents import Document
from adapters.mongodb.storage import MongoStorage
from domain.errors import Conflict
from domain.events import Event
from domain.session import Session
from domain.tenants import Tenant
from tests.conftest import MongoDatabases, open_storage
from tests.contract.builders import NOW, OPEN, add_tenant, at, event, stored_session
from tests.contract.test_event_gaps_review import gaps_of

pytestmark = pytest.mark.anyio

Write = Callable[[], Awaitable[object]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def database(mongodb_databases: MongoDatabases) -> Iterator[str]:
    with mongodb_databases.fresh() as url:
        yield url


@pytest.fixture
async def server(database: str) -> AsyncIterator[MongoStorage]:
    """The service's store, writing while the export reads."""
    storage: MongoStorage = open_storage(database)
    yield storage
    await storage.close()


class EventsReadAfter:
    """The export's database, on which `write` runs before each of the first `times` reads of
    the events (their cursor sends its query when first iterated: after the write)."""

    def __init__(self, db: Any, write: Write, times: int = 1) -> None:
        self._db, self._write, self._times = db, write, times

    def __getitem__(self, name: str) -> Any:
        if name != "events":
            return self._db[name]
        return _Collection(self._db[name], self)

    async def before_events(self) -> None:
        if self._times > 0:
            self._times -= 1
            await self._write()


class _Collection:
    def __init__(self, collection: Any, database: EventsReadAfter) -> None:
        self._collection, self._database = collection, database

    def find(self, *args: Any, **kwargs: Any) -> AsyncIterator[Document]:
        return self._documents(self._collection.find(*args, **kwargs))

    async def _documents(self, cursor: Any) -> AsyncIterator[Document]:
        await self._database.before_events()
        async for document in cursor:
            yield document


async def exported(server: MongoStorage, write: Write, times: int = 1) -> list[Any]:
    archive = MongoTenantArchive(EventsReadAfter(server.db, write, times))  # type: ignore[arg-type]
    tenant = await server.tenants.get_by_name("acme")
    assert tenant is not None
    return [record async for record in archive.export(tenant.id)]


async def a_session_with_ticks(server: MongoStorage, ticks: int) -> tuple[Tenant, Session]:
    tenant = await add_tenant(server, "acme")
    session = await stored_session(server, tenant)
    await tick(server, tenant, session, *range(1, ticks + 1))
    return tenant, session


async def tick(server: MongoStorage, tenant: Tenant, session: Session, *numbers: int) -> None:
    batch = [(i, event(session, n, meters={"ticks": 1})) for i, n in enumerate(numbers)]
    assert (await server.events.append(tenant.id, batch, NOW, OPEN)).inserted == len(numbers)


async def test_a_batch_counted_between_the_reads_is_exported_with_its_usage(
    server: MongoStorage,
) -> None:
    tenant, session = await a_session_with_ticks(server, 3)

    records = await exported(server, lambda: tick(server, tenant, session, 4, 5))

    (moved,) = [r for r in records if isinstance(r, Session)]
    events = [r.sequence_no for r in records if isinstance(r, Event)]
    assert (moved.usage.get("ticks"), events) == (5, [1, 2, 3, 4, 5])


async def test_events_retention_deletes_between_the_reads_are_remembered_not_missing(
    server: MongoStorage,
) -> None:
    tenant, _ = await a_session_with_ticks(server, 6)

    async def retention() -> None:
        assert await server.retention.delete_events(tenant.id, at(3), 100) == 2

    records = await exported(server, retention)

    (moved,) = [r for r in records if isinstance(r, Session)]
    events = [r.sequence_no for r in records if isinstance(r, Event)]
    assert (events, moved.deleted_events, gaps_of(moved)) == ([3, 4, 5, 6], [(1, 2)], [])


async def test_a_session_that_changes_at_every_read_stops_the_export(
    server: MongoStorage,
) -> None:
    tenant, session = await a_session_with_ticks(server, 1)
    numbers = iter(range(2, 100))

    with pytest.raises(Conflict, match="export again"):
        await exported(server, lambda: tick(server, tenant, session, next(numbers)), READS)

    # One read fewer, and it is exported as the last change left it.
    records = await exported(
        server, lambda: tick(server, tenant, session, next(numbers)), READS - 1
    )
    (moved,) = [r for r in records if isinstance(r, Session)]
    assert moved.usage.get("ticks") == sum(isinstance(r, Event) for r in records)


async def test_sessions_read_a_few_at_a_time_are_each_exported_once_with_their_events(
    server: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of 3 sessions, cut where they would hold more than 5 events (a session with more
    is taken alone): every session once, in order, each followed by all of its events."""
    monkeypatch.setattr(archive, "SESSIONS_AT_ONCE", 3)
    monkeypatch.setattr(archive, "EVENTS_AT_ONCE", 5)
    tenant = await add_tenant(server, "acme")
    sessions = sorted([await stored_session(server, tenant) for _ in range(8)], key=lambda s: s.id)
    ticks = dict(zip((s.id for s in sessions), [0, 6, 2, 3, 1, 10, 0, 4], strict=True))
    for session in sessions:
        if ticks[session.id]:
            await tick(server, tenant, session, *range(1, ticks[session.id] + 1))

    records = await exported(server, lambda: asyncio.sleep(0), times=0)

    given = [r.id for r in records if isinstance(r, Session)]
    events = Counter(r.session_id for r in records if isinstance(r, Event))
    assert (given, dict(events)) == (
        [s.id for s in sessions],
        {session_id: n for session_id, n in ticks.items() if n},
    )
    # Each session's events come after it and before the next page's sessions.
    position = {id(r): i for i, r in enumerate(records)}
    for record in records:
        if isinstance(record, Event):
            (session,) = [
                r for r in records if isinstance(r, Session) and r.id == record.session_id
            ]
            assert position[id(session)] < position[id(record)]
    # Pages (the first holds no events, so its session runs into the next page's):
    # [0 events], [6], [2, 3], [1], [10], [0, 4].
    runs = [
        [r.id for r in run]
        for is_session, run in itertools.groupby(records, lambda r: isinstance(r, Session))
        if is_session
    ]
    ids = [s.id for s in sessions]
    assert runs == [ids[0:2], ids[2:4], ids[4:5], ids[5:6], ids[6:8]]
