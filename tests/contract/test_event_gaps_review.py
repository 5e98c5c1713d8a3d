"""A hostile review of 1e17192 (each session remembers the numbers of its events retention
deleted, Session.deleted_events, and its event gaps leave them out: domain/event_gaps.py), on
every store. API.md: event_gaps are the ranges of numbers missing from 1 to the highest seen;
a number that arrived is never one of them, whatever deleted it since. The xfail tests are the
findings (their reason is the defect); the others pin guarantees the commit's tests leave out,
concurrent callers especially."""

import contextlib
import json
from typing import Any

import pytest

from application.data_rights.sweeps import in_batches
from application.events.ingest_events import IngestEventsCommand
from application.retention.apply_retention import ApplyRetentionCommand
from application.sessions.ports import SessionFilter
from application.transfer.export_tenant import ExportTenantQuery
from domain.errors import InvalidInput
from domain.event_gaps import find_gaps
from domain.events import MAX_SEQUENCE_NO, BatchOutcome, Event
from domain.session import Exit
from domain.staleness import Staleness
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, SHUT, add_tenant, at, event, stored_session, wired
from tests.contract.races import Race
from tests.contract.telemetry_builders import a_sale
from tests.contract.test_archive import export
from tests.contract.test_transfer_and_retention_review import import_into
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)
PAST_THE_WINDOW = 9 * 24 * 60  # minutes: past the default 7-day late-data window


def numbered(session: Any, *numbers: int, **fields: Any) -> list[tuple[int, Event]]:
    """The session's events of these numbers, each dated its number of minutes after T0."""
    return [(i, event(session, n, **fields)) for i, n in enumerate(numbers)]


def gaps_of(session: Any) -> list[tuple[int, int]]:
    return [(first, last) for first, last in session.event_gaps]


# --- Findings -------------------------------------------------------------------------------


async def test_a_session_holding_the_highest_sequence_number_reads_after_retention(
    storage: Any, tenant: Tenant
) -> None:
    """domain/events.py: a sequence number may be anything up to MAX_SEQUENCE_NO (2^63 - 1,
    what every store holds). Events 1, 2 and MAX_SEQUENCE_NO arrived; retention deletes 1.
    The session reads, alone and listed, with 3 to MAX_SEQUENCE_NO - 1 missing, and closes."""
    session = await stored_session(storage, tenant)
    highest = Event(session.id, MAX_SEQUENCE_NO, "tap", at(3))
    await storage.events.append(tenant.id, [*numbered(session, 1, 2), (2, highest)], NOW, OPEN)
    assert await storage.retention.delete_events(tenant.id, at(2), 100) == 1

    read = await storage.sessions.get(tenant.id, session.id)
    (listed,) = await storage.sessions.find(tenant.id, SessionFilter(), 10)
    closed, _ = await storage.sessions.close(
        tenant.id, session.id, Exit(at(5)), frozenset(), NOW, SHUT
    )

    assert gaps_of(read) == gaps_of(listed) == [(3, MAX_SEQUENCE_NO - 1)]
    assert closed.ended_at == at(5)


async def test_the_reaper_times_out_a_tenants_idle_sessions_beside_one_holding_the_maximum(
    storage: Any, tenant: Tenant
) -> None:
    """SessionRepository.time_out_idle closes the stale active sessions. One of them holds
    event MAX_SEQUENCE_NO and retention deleted one of its events: the reaper's batch reads
    the sessions it closes with their gaps, and must still close both."""
    session = await stored_session(storage, tenant)
    idle = await stored_session(storage, tenant, 1)
    highest = Event(session.id, MAX_SEQUENCE_NO, "tap", at(3))
    await storage.events.append(tenant.id, [*numbered(session, 1), (1, highest)], NOW, OPEN)
    assert await storage.retention.delete_events(tenant.id, at(2), 100) == 1

    closed = await storage.sessions.time_out_idle(
        tenant.id, Staleness(at(60)), 10, frozenset(), NOW, OPEN
    )

    assert sorted(s.id for s in closed) == sorted([session.id, idle.id])


async def test_an_import_with_a_range_of_three_numbers_is_refused_or_leaves_the_session_readable(
    storage: Any, memory: Any
) -> None:
    """ImportTenant: a line that is not a record of the format is refused (InvalidInput names
    it); tenant_export_format checks each field against its type, deleted_events'
    list[tuple[int, int]] included. A file whose session says [[1, 2, 3]] must be refused, or
    stored so that the session still reads."""
    tenant = await add_tenant(memory, "acme")
    session = await stored_session(memory, tenant)
    await memory.events.append(tenant.id, numbered(session, 1, 2, 4), NOW, OPEN)
    await memory.retention.delete_events(tenant.id, at(3), 100)
    lines = await export(memory, "acme")
    forged = [_with_deleted_events(line, [[1, 2, 3]]) for line in lines]
    assert forged != lines

    with contextlib.suppress(InvalidInput):  # refused: nothing stored, nothing to read
        await import_into(storage, forged)

    await storage.sessions.get(tenant.id, session.id)  # no ValueError: not enough/too many


def _with_deleted_events(line: str, deleted: list[list[int]]) -> str:
    record = json.loads(line)
    if record.get("record") != "session":
        return line
    return json.dumps({**record, "deleted_events": deleted})


async def test_events_a_deletion_took_from_a_session_it_kept_are_not_reported_missing(
    storage: Any, tenant: Tenant
) -> None:
    """DeleteResource: a sale recorded for a session after its events were deleted keeps the
    session, without those events. Events 1, 2, 4 and 5 arrived (3 never did); retention
    deleted 1 and 2, then the sweep deleted 4 and 5 and a sale kept the session. Whatever its
    gaps say, they name no number that arrived (3 alone, or nothing, as before the commit)."""
    session = await stored_session(storage, tenant)
    await storage.events.append(tenant.id, numbered(session, 1, 2, 4, 5), NOW, OPEN)
    assert await storage.retention.delete_events(tenant.id, at(3), 100) == 2
    swept = await in_batches(lambda: storage.erasure.delete_events(tenant.id, [session.id], 1000))
    await storage.sales.add(tenant.id, [a_sale("sale-1", session.id, 4)])

    removed = await storage.erasure.delete_sessions(tenant.id, [session.id])

    kept = await storage.sessions.get(tenant.id, session.id)
    assert (swept, removed.kept) == (2, frozenset({session.id}))
    missing = {n for first, last in gaps_of(kept) for n in range(first, last + 1)}
    assert missing <= {3}, gaps_of(kept)


async def test_an_export_taken_while_retention_runs_moves_the_gaps_that_were(
    storage: Any, memory: Any
) -> None:
    """The commit: an export carries the ranges, so a move keeps the gaps. Retention runs on
    the server's schedule while an operator exports: events 1, 2 and 4 arrived, and retention
    deletes 1 and 2 once the export has read the session. Moved, the session misses 3 only."""
    tenant = await add_tenant(storage, "acme")
    session = await stored_session(storage, tenant)
    await storage.events.append(tenant.id, numbered(session, 1, 2, 4), NOW, OPEN)
    exported = await wired(storage).use_cases().export_tenant()(ExportTenantQuery("acme"))
    lines = []
    async for line in exported.lines:
        lines.append(line)
        if json.loads(line)["record"] == "session":  # the export has read the session
            assert await storage.retention.delete_events(tenant.id, at(3), 100) == 2

    await import_into(memory, lines)

    moved = await memory.sessions.get(tenant.id, session.id)
    assert gaps_of(moved) == [(3, 3)]


# --- Guarantees -----------------------------------------------------------------------------


async def test_a_copy_of_an_event_retention_deleted_from_an_active_session_adds_nothing(
    storage: Any,
) -> None:
    """README: each event is stored once, however often it is sent. An active session takes
    events of any date, and retention deletes its old ones (event_retention_days 1): a copy of
    one its client sends 9 days on is refused as late by ingest (retention's cutoff is never
    inside the late-data window), so it is neither stored nor counted again, and 3 stays the
    one missing number."""
    tenant = await add_tenant(storage, "acme", event_retention_days=1)
    session = await stored_session(storage, tenant)
    ticks = [event(session, n, meters={"ticks": 1}) for n in (1, 2, 4)]
    assert (await _ingest(storage, tenant, 5, *ticks)).inserted == 3
    clock = FakeClock(at(PAST_THE_WINDOW))
    deleted = await wired(storage, clock).jobs().apply_retention()(ApplyRetentionCommand("acme"))
    assert deleted.events == 3

    again = await _ingest(storage, tenant, PAST_THE_WINDOW + 1, ticks[0])

    kept = await storage.sessions.get(tenant.id, session.id)
    assert (again.inserted, [r.error for r in again.rejections]) == (0, ["late"]), again
    assert (kept.is_active, kept.usage, kept.event_count) == (True, {"ticks": 3}, 3)
    assert gaps_of(kept) == [(3, 3)]


async def _ingest(storage: Any, tenant: Tenant, minute: float, *events: Event) -> BatchOutcome:
    use_case = wired(storage, FakeClock(at(minute))).use_cases().ingest_events()
    outcome: BatchOutcome = await use_case(IngestEventsCommand(tenant, list(events)))
    return outcome


async def test_many_deleted_ranges_leave_the_gaps_that_arrived_alone_and_listed(
    storage: Any, tenant: Tenant
) -> None:
    """Every other number arrived (a lossy client); retention deletes them in small batches,
    then a late copy of a gap fills it: the gaps are those of what arrived, read alone and
    listed, and nothing that arrived is missing."""
    session = await stored_session(storage, tenant)
    arrived = list(range(1, 80, 2))
    await storage.events.append(tenant.id, numbered(session, *arrived), NOW, OPEN)
    deleted = await in_batches(lambda: storage.retention.delete_events(tenant.id, at(40), 7))
    late = await storage.events.append(tenant.id, [(0, event(session, 10))], NOW, OPEN)

    read = await storage.sessions.get(tenant.id, session.id)
    (listed,) = await storage.sessions.find(tenant.id, SessionFilter(), 10)

    expected = find_gaps(sorted([*arrived, 10]))
    assert (deleted, late.inserted) == (20, 1)
    assert gaps_of(read) == gaps_of(listed) == expected


async def test_retention_racing_a_late_event_that_fills_a_gap_leaves_none(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Events 1, 2 and 4 arrived; retention deletes 1 and 2 while the client's late event 3
    arrives: whichever goes first, nothing is missing after both."""
    session = await stored_session(storage, tenant)
    await storage.events.append(tenant.id, numbered(session, 1, 2, 4), NOW, OPEN)

    deleted, late = await race(
        lambda s: s.retention.delete_events(tenant.id, at(3), 100),
        lambda s: s.events.append(tenant.id, numbered(session, 3), NOW, OPEN),
    )

    read = await storage.sessions.get(tenant.id, session.id)
    assert (deleted, late.inserted) == (2, 1)
    assert gaps_of(read) == []
    assert (read.event_count, read.max_sequence_no) == (4, 4)


async def test_two_retention_runs_at_once_delete_each_event_once_and_keep_the_gaps(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Two servers apply retention to the same tenant at once, in small batches: each event
    is deleted (and counted) once, and the gaps stay 5 and 9; a late 5 then fills its gap."""
    session = await stored_session(storage, tenant)
    arrived = [n for n in range(1, 13) if n not in (5, 9)]
    await storage.events.append(tenant.id, numbered(session, *arrived), NOW, OPEN)

    async def retention(s: Any) -> int:
        return await in_batches(lambda: s.retention.delete_events(tenant.id, at(13), 3))

    counts = await race(retention, retention)
    after = await storage.sessions.get(tenant.id, session.id)
    await storage.events.append(tenant.id, numbered(session, 5), NOW, OPEN)
    filled = await storage.sessions.get(tenant.id, session.id)

    assert sum(counts) == len(arrived), counts
    assert gaps_of(after) == [(5, 5), (9, 9)]
    assert gaps_of(filled) == [(9, 9)]


async def test_retention_and_a_clients_batches_over_two_sessions_never_deadlock(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Retention locks the sessions whose events it deletes, in id order, as a client's batch
    does: batches naming both sessions (the later id first) racing retention's small batches
    over both all finish, each event counted once, no gap made."""
    first, second = sorted(
        [await stored_session(storage, tenant), await stored_session(storage, tenant)],
        key=lambda s: s.id,
    )
    for session in (first, second):
        await storage.events.append(tenant.id, numbered(session, *range(1, 9)), NOW, OPEN)

    async def client(s: Any) -> int:
        inserted = 0
        for n in range(9, 15):
            batch = [(0, event(second, n)), (1, event(first, n))]
            inserted += (await s.events.append(tenant.id, batch, NOW, OPEN)).inserted
        return inserted

    async def retention(s: Any) -> int:
        return await in_batches(lambda: s.retention.delete_events(tenant.id, at(9), 3))

    inserted, deleted = await race(client, retention)

    assert (inserted, deleted) == (12, 16)
    for session in (first, second):
        read = await storage.sessions.get(tenant.id, session.id)
        assert (gaps_of(read), read.event_count, read.max_sequence_no) == ([], 14, 14)


async def test_an_export_from_before_deleted_events_imports_with_the_gaps_it_had(
    storage: Any, memory: Any
) -> None:
    """An export written before the commit has no deleted_events: it imports (the field has a
    default), and the session's gaps are those of its events, as they were then (migration
    0032: the numbers retention had deleted show as gaps)."""
    tenant = await add_tenant(memory, "acme")
    session = await stored_session(memory, tenant)
    await memory.events.append(tenant.id, numbered(session, 1, 2, 4, 6), NOW, OPEN)
    await memory.retention.delete_events(tenant.id, at(3), 100)
    lines = await export(memory, "acme")
    older = [_without_deleted_events(line) for line in lines]
    assert older != lines

    await import_into(storage, older)

    moved = await storage.sessions.get(tenant.id, session.id)
    assert gaps_of(moved) == [(1, 3), (5, 5)]


def _without_deleted_events(line: str) -> str:
    record = json.loads(line)
    record.pop("deleted_events", None)
    return json.dumps(record)


@on_mongodb
async def test_a_mongodb_retention_that_dies_after_remembering_leaves_no_false_gap(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MongoRetention.delete_events: a run that dies between remembering the numbers and
    deleting the events leaves numbers remembered that are still stored, no gap either; the
    next run deletes them, and the gaps are still those that were, however often it died."""
    from pymongo.asynchronous.collection import AsyncCollection

    session = await stored_session(storage, tenant)
    await storage.events.append(tenant.id, numbered(session, 1, 2, 4, 6), NOW, OPEN)
    delete_many = AsyncCollection.delete_many
    deaths = {"left": 2}

    async def dies(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.name == "events" and deaths["left"]:
            deaths["left"] -= 1
            raise ConnectionError("the process died")
        return await delete_many(self, *args, **kwargs)

    monkeypatch.setattr(AsyncCollection, "delete_many", dies)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await storage.retention.delete_events(tenant.id, at(5), 100)
    between = await storage.sessions.get(tenant.id, session.id)
    deleted = await storage.retention.delete_events(tenant.id, at(5), 100)
    after = await storage.sessions.get(tenant.id, session.id)

    assert deleted == 3
    assert gaps_of(between) == gaps_of(after) == [(3, 3), (5, 5)]
