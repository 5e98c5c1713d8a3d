"""An export taken while clients send events and retention deletes them, with real concurrent
callers on every store: what it gives of each session holds together (README, Moving a tenant).
The SQL stores read one snapshot and the memory store reads whole first; MongoDB has no
snapshot outside a transaction, so it reads a session's events between two reads of the session
that agree (MongoTenantArchive._as_they_were)."""

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from application.transfer.export_tenant import ExportTenantQuery
from domain.session import Session
from domain.tenants import Tenant
from tests.conftest import open_storage
from tests.contract.builders import NOW, OPEN, add_tenant, at, event, stored_session, wired
from tests.contract.test_event_gaps_review import gaps_of
from tests.contract.test_transfer_and_retention_review import import_into

pytestmark = pytest.mark.anyio

SESSIONS = 4
EXPORTS = 8
WRITERS = 4  # at once: enough that one lands between any two of an export's reads


Write = Callable[[Any, int], Awaitable[object]]


async def export_lines(storage: Any, writes: list[int]) -> list[str]:
    """An export's lines, read as an operator's pipe takes them, once a writer has written
    (counted in `writes`) since it began reading (after its tenant line)."""
    before = writes[0]
    exported = await wired(storage).use_cases().export_tenant()(ExportTenantQuery("acme"))
    lines = []
    async for line in exported.lines:
        lines.append(line)
        for _ in range(10_000 if len(lines) == 2 else 0):
            if writes[0] > before:
                break
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)  # let a writer of this loop in between any two lines
    return lines


async def while_writing(write: Write, storage: Any, storage_url: str) -> list[list[str]]:
    """The lines of EXPORTS exports, each taken while WRITERS callers run `write(store, step)`
    over and over, each with steps of its own (writer w takes w, w + WRITERS, ...). They write
    only while an export runs, and each export waits for a write once it has begun. On a
    database each writer is a server of its own: its own client, in a thread of its own (as in
    races.Race), so its commands reach the database between any two of the export's."""
    stop, exporting = threading.Event(), threading.Event()
    writes = [0]

    async def writer(first: int, store: Any) -> None:
        step = first
        while not stop.is_set():
            if not exporting.is_set():
                await asyncio.sleep(0.001)
                continue
            await write(store, step)
            step, writes[0] = step + WRITERS, writes[0] + 1
            # The memory store never waits: its writers would starve the export (or outrun it).
            await asyncio.sleep(0.001 if store is storage else 0)

    async def server(first: int) -> None:
        store = open_storage(storage_url)
        try:
            await writer(first, store)
        finally:
            await store.close()

    if storage_url == "memory://":
        writing = asyncio.gather(*(writer(w, storage) for w in range(WRITERS)))
    else:
        writing = asyncio.gather(
            *(asyncio.to_thread(asyncio.run, server(w)) for w in range(WRITERS))
        )
    exports: list[list[str]] = []
    try:
        for _ in range(EXPORTS):
            before = writes[0]
            exporting.set()
            exports.append(await export_lines(storage, writes))
            exporting.clear()
            assert writes[0] > before  # the writers did write while it ran
    finally:
        stop.set()
        await writing
    return exports


def records(lines: list[str], kind: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, lines) if r["record"] == kind]


async def sessions_of(storage: Any) -> tuple[Tenant, list[Session]]:
    tenant = await add_tenant(storage, "acme")
    sessions = [await stored_session(storage, tenant) for _ in range(SESSIONS)]
    return tenant, sessions


async def test_each_exported_sessions_usage_is_the_sum_of_its_events_while_batches_arrive(
    storage: Any, storage_url: str
) -> None:
    tenant, sessions = await sessions_of(storage)

    async def a_batch(store: Any, step: int) -> object:
        batch = [(i, event(s, step + 1, meters={"ticks": 1})) for i, s in enumerate(sessions)]
        return await store.events.append(tenant.id, batch, NOW, OPEN)

    exports = await while_writing(a_batch, storage, storage_url)

    for lines in exports:
        exported = Counter(e["session_id"] for e in records(lines, "event"))
        usage = {s["id"]: int(s["usage"].get("ticks", 0)) for s in records(lines, "session")}
        assert usage == {s.id: exported[s.id] for s in sessions}
    sent = {sum(1 for _ in records(lines, "event")) for lines in exports}
    assert len(sent) > 1  # batches did arrive while the exports ran


async def test_a_session_moved_while_retention_deletes_its_events_misses_none(
    storage: Any, storage_url: str
) -> None:
    """Events 1..N arrived without a gap; retention deletes the oldest, a few at a time, while
    an operator exports: however the two interleave, the moved sessions miss no event."""
    tenant, sessions = await sessions_of(storage)
    events = 100
    for s in sessions:
        await storage.events.append(
            tenant.id, [(n, event(s, n + 1)) for n in range(events)], NOW, OPEN
        )

    async def retention(store: Any, step: int) -> object:
        deleted: int = await store.retention.delete_events(tenant.id, at(events + 1), 1)
        await asyncio.sleep(0.01)  # so that a slow export is not the first to find none left
        return deleted

    exports = await while_writing(retention, storage, storage_url)

    kept = {len(records(lines, "event")) for lines in exports}
    assert len(kept) > 1  # retention did run while the exports did
    for lines in exports:
        moved = open_storage("memory://")
        await import_into(moved, lines)
        for s in sessions:
            assert gaps_of(await moved.sessions.get(tenant.id, s.id)) == [], s.id
