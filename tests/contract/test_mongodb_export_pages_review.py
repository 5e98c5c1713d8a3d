"""Review of MongoDB's paged export (MongoTenantArchive._as_they_were): a session is given only
when two reads around the read of its events agree. README ("Choosing a storage backend"): "An
export may run while the server serves clients: a session's usage is the sum of the events
exported with it, and the numbers of its events retention deleted are those missing from the
file." Writers are made to land at exact points of the export by wrapping a database.

The review found that a LiveKit track's ends were counted into their session before they were
stored (an export in between gave the stay without them, and a crash between left no gap
seen), and that a session heartbeating faster than its events could be read stopped every
export; both mended since (livekit.ENDS_IN_FLIGHT, archive.EVENT_FIELDS)."""

import itertools
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from bson import ObjectId
from click.testing import CliRunner

from adapters.mongodb import archive, event_documents
from adapters.mongodb.archive import MongoTenantArchive
from adapters.mongodb.event_counting import STALE_AFTER, finish_stale_batches
from adapters.mongodb.livekit import MongoTrackLog
from adapters.mongodb.storage import MongoStorage
from application.transfer import import_tenant
from application.transfer.import_tenant import ImportTenantCommand
from domain.events import Event
from domain.session import Session
from domain.tenants import Tenant
from entrypoints.cli.main import cli
from tests.conftest import open_storage
from tests.contract.builders import (
    NOW,
    OPEN,
    a_session,
    add_tenant,
    event,
    stored_session,
    wired,
)
from tests.contract.test_archive import (
    CAMERA,
    _track_before_its_session,
    everything_and_a_funnel,
    export,
)
from tests.integration.test_mongodb_export_rereads import EventsReadAfter

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)

Hook = Callable[[], Awaitable[object]]


class Before:
    """A database on which `hook` runs once, just before the first `method` of `collection`
    (the writer's next step waits for it: the hook is what happens in between)."""

    def __init__(self, db: Any, collection: str, method: str, hook: Hook) -> None:
        self._db, self._collection, self._method, self._hook = db, collection, method, hook
        self.ran = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def __getitem__(self, name: str) -> Any:
        collection = self._db[name]
        return _Hooked(collection, self) if name == self._collection else collection

    async def run(self) -> None:
        if not self.ran:
            self.ran = True
            await self._hook()


class _Hooked:
    def __init__(self, collection: Any, db: Before) -> None:
        self._collection, self._db = collection, db

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._collection, name)
        if name != self._db._method:
            return real

        async def hooked(*args: Any, **kwargs: Any) -> Any:
            await self._db.run()
            return await real(*args, **kwargs)

        return hooked


async def records_of(storage: MongoStorage, db: Any = None) -> list[Any]:
    """The records MongoDB's export gives of the tenant acme (read through `db` if given)."""
    tenant = await storage.tenants.get_by_name("acme")
    assert tenant is not None
    reader = MongoTenantArchive(storage.db if db is None else db)
    return [record async for record in reader.export(tenant.id)]


def missing(records: list[Any]) -> dict[str, set[int]]:
    """Per exported session, the numbers up to its highest that no exported event has and
    that retention did not delete."""
    numbers: dict[str, set[int]] = {}
    for r in records:
        if isinstance(r, Event):
            numbers.setdefault(r.session_id, set()).add(r.sequence_no)
    holes = {}
    for s in (r for r in records if isinstance(r, Session)):
        deleted = {n for first, last in s.deleted_events for n in range(first, last + 1)}
        known = numbers.get(s.id, set()) | deleted
        holes[s.id] = set(range(1, s.max_sequence_no + 1)) - known
    return holes


@on_mongodb
async def test_a_track_ended_while_its_stay_is_exported_leaves_no_hole(
    storage: MongoStorage,
) -> None:
    """README: the numbers missing from the file are those retention deleted. A track's ends
    are session events (domain.livekit.track_events) that the stay's document numbers before
    they are stored (ENDS_IN_FLIGHT). Found by the review: the export ran between the two and
    gave the stay without them. Here it starts there, and the track's write goes on 0.2 s
    later: the export waits for it."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    exported: list[Any] = []

    async def export() -> None:
        exported.extend(await records_of(storage))

    async with anyio.create_task_group() as tasks:

        async def export_meanwhile() -> None:
            tasks.start_soon(export)
            await anyio.sleep(0.2)

        hooked = Before(storage.db, "events", "insert_many", export_meanwhile)
        assert await MongoTrackLog(hooked).record(tenant.id, stay.id, CAMERA)  # type: ignore[arg-type]

    assert hooked.ran
    assert missing(exported) == {stay.id: set()}
    assert [r.sequence_no for r in exported if isinstance(r, Event)] == [1, 2]


class Died(Exception):
    """The server went away."""


@on_mongodb
async def test_a_track_whose_ends_were_never_stored_shows_them_as_a_gap(
    storage: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """adapters/mongodb/livekit.py: "A crash before the insert leaves a gap in the session's
    events, which its event_gaps show" (once a later event is stored: the numbers above the
    last one stored are no gap). Found by the review: the ends were counted into event_count
    with their numbers, so no gap was looked for. And an export, which waits for ends in
    flight, does not wait for these for ever: it gives the stay with its gap."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")

    async def crash() -> None:
        raise Died

    with pytest.raises(Died):
        await MongoTrackLog(Before(storage.db, "events", "insert_many", crash)).record(  # type: ignore[arg-type]
            tenant.id, stay.id, CAMERA
        )

    assert (await storage.events.append(tenant.id, [(0, event(stay, 3))], NOW, OPEN)).inserted

    read = await storage.sessions.get(tenant.id, stay.id)
    assert read is not None
    assert (read.max_sequence_no, read.event_gaps) == (3, [(1, 2)])
    monkeypatch.setattr(archive, "REREAD_AFTER_SECONDS", 0)
    (exported,) = [r for r in await records_of(storage) if isinstance(r, Session)]
    assert exported.event_gaps == [(1, 2)]


@on_mongodb
async def test_a_track_end_whose_number_a_client_took_meanwhile_leaves_none_in_flight(
    storage: MongoStorage,
) -> None:
    """Noticed by the second review: a client's event that took the number of a track's end
    between its numbering and its insert failed the whole insert, left ends_in_flight set for
    good (every export waited on the stay) and event_count short. The end whose number was
    taken is lost; the other is stored and counted, and nothing is left in flight."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")

    async def a_client_takes_1() -> None:
        assert (await storage.events.append(tenant.id, [(0, event(stay, 1))], NOW, OPEN)).inserted

    hooked = Before(storage.db, "events", "insert_many", a_client_takes_1)
    assert await MongoTrackLog(hooked).record(tenant.id, stay.id, CAMERA)  # type: ignore[arg-type]

    document = await storage.db["sessions"].find_one({"tenant_id": tenant.id, "id": stay.id})
    assert document is not None
    stored = await storage.db["events"].count_documents({"session_id": stay.id})
    assert (document["ends_in_flight"], document["event_count"], stored) == (0, 2, 2)
    assert document["max_sequence_no"] == 2


def usage_and_events(records: list[Any]) -> dict[str, tuple[int, int]]:
    """Per exported session: its usage of `ticks`, and how many of its events were exported."""
    sessions = [r for r in records if isinstance(r, Session)]
    return {
        s.id: (
            int(s.usage.get("ticks", 0)),
            sum(isinstance(r, Event) and r.session_id == s.id for r in records),
        )
        for s in sessions
    }


async def tick(storage: MongoStorage, tenant: Tenant, session: Session, *numbers: int) -> None:
    ticks = [(i, event(session, n, meters={"ticks": 1})) for i, n in enumerate(numbers)]
    assert (await storage.events.append(tenant.id, ticks, NOW, OPEN)).inserted == len(numbers)


@on_mongodb
async def test_sessions_deleted_and_started_between_pages_are_given_once_or_not_at_all(
    storage: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MongoTenantArchive._as_they_were: "A session deleted meanwhile is not exported"; the
    pages go on after the last id given (README: each session given with its events). Pages of
    one session; at the first page's read of events, that session and a later one are deleted
    (Erasure.delete_sessions) and sessions start before, between and after the others."""
    monkeypatch.setattr(archive, "SESSIONS_AT_ONCE", 1)
    tenant = await add_tenant(storage, "acme")
    for name in "bdfh":
        session = replace(a_session(tenant), id=name)
        assert await storage.sessions.add(session)
        await tick(storage, tenant, session, 1, 2)

    async def meanwhile() -> None:
        removed = await storage.erasure.delete_sessions(tenant.id, ["b", "f"])
        assert (removed.sessions, removed.events) == (2, 4)
        for name in "aegz":
            session = replace(a_session(tenant), id=name)
            assert await storage.sessions.add(session)
            await tick(storage, tenant, session, 1)

    records = await records_of(storage, EventsReadAfter(storage.db, meanwhile))

    given = usage_and_events(records)
    assert [r.id for r in records if isinstance(r, Session)] == sorted(given)  # each once
    assert {"d", "h"} <= given.keys() and not {"a", "b", "f"} & given.keys()
    assert {r.session_id for r in records if isinstance(r, Event)} <= given.keys()
    assert all(usage == events for usage, events in given.values()), given


@on_mongodb
async def test_a_batch_whose_append_died_is_exported_only_once_counted(
    storage: MongoStorage,
) -> None:
    """event_counting: events an append left marked count only once counted into their session
    (finish_stale_batches); README: a session's usage is the sum of the events exported with
    it. Exported as left, then with a finisher counting them between the export's reads."""
    tenant = await add_tenant(storage, "acme")
    session = await stored_session(storage, tenant)
    await tick(storage, tenant, session, 1, 2)
    died = ObjectId.from_datetime(datetime.now(UTC) - 2 * STALE_AFTER)
    left = [event(session, n, meters={"ticks": 1}) for n in (3, 4)]
    await storage.db["events"].insert_many(
        [{**event_documents.to_document(tenant.id, e), "batch": died} for e in left]
    )

    assert usage_and_events(await records_of(storage)) == {session.id: (2, 2)}

    async def finisher() -> None:
        await finish_stale_batches(storage.db, tenant.id, NOW, OPEN)

    records = await records_of(storage, EventsReadAfter(storage.db, finisher))
    assert usage_and_events(records) == {session.id: (4, 4)}
    assert missing(records) == {session.id: set()}


def kinds(lines: list[str]) -> Counter[str]:
    return Counter(json.loads(line)["record"] for line in lines)


@on_mongodb
@pytest.mark.parametrize("target", ["memory", "sqlite", "postgresql", "mongodb"])
async def test_an_export_given_page_by_page_imports_whole_in_small_batches(
    storage: MongoStorage, target: str, databases: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ImportTenant._flush stores each batch in the format's order, since MongoDB's file gives
    a few sessions, their events and tracks, then the next few (ports.TenantArchive.export):
    whatever the batches, the other store ends up with every record (README, Moving a
    tenant)."""
    monkeypatch.setattr(archive, "SESSIONS_AT_ONCE", 2)
    tenant = await everything_and_a_funnel(storage)
    for n in range(4):
        stay = await stored_session(storage, tenant, 40 + n, kind="livekit", resource_id="r")
        assert await storage.tracks.record(tenant.id, stay.id, replace(CAMERA, track_sid=f"T{n}"))
    lines = await export(storage, "exam-prep")
    runs = [kind for kind, _ in itertools.groupby(json.loads(line)["record"] for line in lines)]
    assert runs.count("track") > 1  # pages: tracks, then the next page's sessions
    # A batch that begins with a page's tracks and holds the next page's sessions and tracks.
    batch = next(n for n in range(2, 20) if _track_before_its_session(lines[1:-1], n))
    monkeypatch.setattr(import_tenant, "BATCH", batch)

    with databases.fresh(target) as url:
        other = open_storage(url)
        try:
            await wired(other).use_cases().import_tenant()(ImportTenantCommand(lines))
            moved = await export(other, "exam-prep")
        finally:
            if url != "memory://":
                await other.close()

    assert kinds(moved) == kinds(lines)
    sessions = [line for line in lines if '"record":"session"' in line]
    assert sorted(line for line in moved if '"record":"session"' in line) == sorted(sessions)


def changed_at_every_read(monkeypatch: pytest.MonkeyPatch, update: dict[str, Any]) -> None:
    """The export's sessions get `update` as it reads their events, at each of its 3 reads."""
    monkeypatch.setattr(archive, "READS", 3)
    monkeypatch.setattr(archive, "REREAD_AFTER_SECONDS", 0)
    events_of = MongoTenantArchive._events_of

    async def changing(self: Any, tenant_id: str, sessions: dict[str, Any]) -> Any:
        busy = {"tenant_id": tenant_id, "id": {"$in": list(sessions)}}
        await self._db["sessions"].update_many(busy, update)
        return await events_of(self, tenant_id, sessions)

    monkeypatch.setattr(MongoTenantArchive, "_events_of", changing)


@on_mongodb
async def test_a_session_heartbeating_at_every_read_is_exported(
    storage: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the review: the export compared whole documents, so a session whose client
    beat faster than a read of its events took (32 a second, 3,000 events) stopped every
    export. A heartbeat changes no event: only what the document says of them is compared."""
    tenant = await add_tenant(storage, "acme")
    session = await stored_session(storage, tenant)
    await tick(storage, tenant, session, 1, 2)
    changed_at_every_read(monkeypatch, {"$inc": {"heartbeats": 1}})  # no event is counted

    records = await records_of(storage)

    assert usage_and_events(records) == {session.id: (2, 2)}


@on_mongodb
async def test_an_export_that_gives_up_is_one_line_of_error_and_no_end(
    storage: MongoStorage, storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: a session that changes at each of the reads stops the export (`export again`);
    entrypoints.cli.running.run: domain errors are one line and exit code 1, never a traceback;
    the file written so far has no end line, so that no import takes it as whole."""
    tenant = await add_tenant(storage, "acme")
    await tick(storage, tenant, await stored_session(storage, tenant), 1)
    changed_at_every_read(monkeypatch, {"$inc": {"event_count": 1}})  # a count, as a batch's

    command = ["--storage-url", storage_url, "export", "--tenant", "acme"]
    result = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, command))

    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: sessions [") and "export again" in result.stderr
    assert not any('"record":"end"' in line for line in result.stdout.splitlines())
