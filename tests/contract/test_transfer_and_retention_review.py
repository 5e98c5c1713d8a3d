"""A hostile review of tenant export/import (application/transfer, adapters/*/archive.py) and of
retention (application/retention, adapters/*/retention.py), on every store. Each test names the
promise of API.md, README.md or a port's docstring it holds the stores to; the xfail ones are the
findings (their reason is the defect)."""

import asyncio
import contextlib
import json
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from application.events.ingest_events import IngestEventsCommand
from application.reports.report_usage import ReportUsageQuery
from application.retention.apply_retention import ApplyRetentionCommand
from application.rollups.roll_up_usage import RollUpUsageCommand
from application.telemetry.record_sales import RecordSalesCommand
from application.transfer.export_tenant import ExportTenantQuery
from application.transfer.import_tenant import ImportCounts, ImportTenantCommand
from application.transfer.tenant_export_format import VERSION
from domain.credits import LedgerEntry, Rate
from domain.errors import Conflict, InvalidInput
from domain.events import BatchOutcome, Event
from domain.session import ChargeState, Exit, Session, SessionStatus
from domain.snapshots import Snapshot
from domain.tenants import ApiKey, Role, Tenant
from tests.conftest import open_storage
from tests.contract.builders import (
    NOW,
    OPEN,
    SHUT,
    T0,
    a_session,
    a_tenant_with_everything,
    add_tenant,
    at,
    event,
    stored_session,
    wired,
)
from tests.contract.races import Pause, Race, after
from tests.contract.telemetry_builders import a_full_error, a_metric, a_sale, amounts, an_item
from tests.contract.test_archive import export
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

MAX_INT64 = 2**63 - 1
DAY = timedelta(days=1)


async def import_into(storage: Any, lines: Sequence[str]) -> ImportCounts:
    counts: ImportCounts = (
        await wired(storage).use_cases().import_tenant()(ImportTenantCommand(lines))
    )
    return counts


def records(lines: Sequence[str], kind: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, lines[1:]) if r["record"] == kind]


async def ingest(storage: Any, tenant: Tenant, minute: float, *events: Event) -> BatchOutcome:
    """Events sent through the use case at `minute` after T0, judged by the tenant's settings."""
    use_case = wired(storage, FakeClock(at(minute))).use_cases().ingest_events()
    outcome: BatchOutcome = await use_case(IngestEventsCommand(tenant, list(events)))
    return outcome


async def retention_at(storage: Any, minute: float, tenant: Tenant) -> Any:
    clock = FakeClock(at(minute))
    return await wired(storage, clock).jobs().apply_retention()(ApplyRetentionCommand(tenant.name))


# --- Export and import ---------------------------------------------------------------------


async def a_tenant_at_the_limits(storage: Any) -> Tenant:
    """Every figure at the bound the README's Limits table gives it: 2^63 - 1 traffic bytes and
    session attributes, meter sums with 9 decimals just below 10^9, sale amounts just below
    10^15 with 9 decimals, an error message of 4 KB and a stack trace of 64 KB (multi-byte
    text), instants sent with other offsets, a grant of 10^12."""
    tenant = await add_tenant(storage, "limits", time_zone="Asia/Seoul", dimensions=("store",))
    await storage.rates.put(tenant.id, Rate("kiosk", 1_000_000))
    seoul = timezone(timedelta(hours=9))
    session = await stored_session(
        storage,
        tenant,
        1,
        kind="kiosk",
        subject_id="지민",
        attributes={"store": "강남 🏪", "serial": MAX_INT64, "negative": -MAX_INT64 - 1},
    )
    await storage.events.append(
        tenant.id,
        [
            (
                0,
                event(session, 1, data={"ünï": "코드" * 100}, meters={"m": Decimal("0.000000001")}),
            ),
            (1, event(session, 2, label="green", meters={"m": Decimal("999999998.999999998")})),
        ],
        NOW,
        OPEN,
    )
    await storage.sessions.close(
        tenant.id,
        session.id,
        Exit(at(9).astimezone(seoul), usage={"n": 999_999_999}),
        frozenset({"kiosk"}),
        NOW,
        SHUT,
    )
    await storage.ledger.grant(
        LedgerEntry.grant("g-1", tenant.id, "지민", 10**12, "한도", "g-1", at(0))
    )
    await storage.ledger.settle(tenant.id, session.id, 0, 8, at(9))
    await storage.snapshots.add(
        tenant.id, [Snapshot("lk", at(2).astimezone(seoul), 100.0, 0.0, 1.5, MAX_INT64, 10**9, 0)]
    )
    message = "용" * 1365 + "x"  # 4,096 bytes
    stack = ("프레임 " * 6553)[: 65536 // 3] + "…"
    await storage.errors.add(
        tenant.id,
        [replace(a_full_error("e-1", session.id), message=message, stack_trace=stack)],
    )
    await storage.metrics.add(tenant.id, [a_metric("m-1", 7 * 24 * 3600 * 1000.0, 1)])
    big = amounts("999999999999999.999999999", "0.000000001", "999999999999999.999999999")
    sale = a_sale("s-1", session.id, 2, amounts=big, items=[an_item("sku", 10**6, "0.5")])
    await storage.sales.add(tenant.id, [sale])
    return tenant


async def test_a_tenant_at_every_limit_moves_from_memory_to_this_store_and_back_unchanged(
    storage: Any, memory: Any
) -> None:
    """README: moving a tenant between any two stores keeps identical figures; numbers and
    instants at the Limits table's bounds fit every store exactly."""
    await a_tenant_at_the_limits(memory)
    exported = await export(memory, "limits")
    assert records(exported, "session")[0]["attributes"]["serial"] == MAX_INT64

    await import_into(storage, exported)
    here = await export(storage, "limits")
    back = open_storage("memory://")
    await import_into(back, here)

    assert here == exported
    assert await export(back, "limits") == exported


async def test_an_export_cut_short_is_refused_not_imported_as_a_whole_tenant(
    storage: Any, memory: Any
) -> None:
    """The brief: a truncated export file gives a clear error (or a stated behaviour). An
    export dies mid-way (the store went away, the disk filled up): its last lines are gone.
    Found by the review: it was imported without a word; version 2 of the format ends with a
    line that counts the records."""
    await a_tenant_with_everything(memory)
    lines = await export(memory, "exam-prep")
    cut = lines[: -len(records(lines, "sale")) - len(records(lines, "metric"))]

    with pytest.raises(InvalidInput):
        await import_into(storage, cut)


async def test_an_export_that_lost_a_line_inside_is_refused_and_one_of_version_1_is_taken(
    storage: Any, memory: Any
) -> None:
    """The end line counts the records: a file that lost one inside is refused, before a small
    tenant stores anything; a file written before the end line existed (version 1) is read as
    it always was."""
    await a_tenant_with_everything(memory)
    header, *body, end = await export(memory, "exam-prep")

    with pytest.raises(InvalidInput, match=f"counts {len(body)} records, not {len(body) - 1}"):
        await import_into(storage, [header, *body[:-2], body[-1], end])
    version_1 = header.replace(f'"version": {VERSION}', '"version": 1')
    counts = await import_into(storage, [version_1, *body])

    assert sum(counts.new.values()) == len(body)


async def test_a_broken_line_late_in_a_large_export_leaves_no_half_imported_tenant(
    storage: Any, memory: Any
) -> None:
    """The brief: a corrupt export file gives a clear error and nothing half-imported (or a
    stated behaviour: ImportTenant states only that InvalidInput names the line). Found by
    the review: the batches before the broken line were stored; the file is checked whole
    first now."""
    tenant = await a_tenant_with_everything(memory)
    await memory.snapshots.add(
        tenant.id, [Snapshot("lk-2", at(m), 1.0, 1.0, 1.0, m, 1, 1) for m in range(600)]
    )
    lines = await export(memory, "exam-prep")
    broken = [*lines[:-1], lines[-1][: len(lines[-1]) // 2]]  # the last sale cut mid-line

    with pytest.raises(InvalidInput, match=f"line {len(lines)}"):
        await import_into(storage, broken)

    assert await storage.tenants.get_by_name("exam-prep") is None


async def test_an_import_writes_into_its_own_tenant_only(storage: Any, memory: Any) -> None:
    """API.md: a tenant's data is invisible to every other tenant. An import file names one
    tenant; records in it that carry another tenant's id must not land in that tenant. Found
    by the review: each store wrote a record under the tenant it named (sessions on SQL and
    MongoDB; an admin key on every store)."""
    victim = await add_tenant(storage, "victim")
    intruder = await add_tenant(memory, "intruder")
    key, secret = ApiKey.issue("k-1", intruder.id, Role.ADMIN, T0)
    session = a_session(intruder, 1)
    await memory.api_keys.add(key)
    assert await memory.sessions.add(session)
    lines = await export(memory, "intruder")
    tenant_line, *rest = lines[1:]
    forged = [lines[0], tenant_line, *(line.replace(intruder.id, victim.id) for line in rest)]

    with contextlib.suppress(InvalidInput):  # refused: as good as written under the intruder
        await import_into(storage, forged)

    assert await storage.sessions.get(victim.id, session.id) is None
    stored_key = await storage.api_keys.get_by_hash(key.secret_hash)
    assert stored_key is None or stored_key.tenant_id != victim.id, secret


async def closed_and_charged(storage: Any, tenant: Tenant, session: Session) -> None:
    """The session completed at minute 5 and charged 10 credits (its rate: 2 a minute)."""
    await storage.sessions.close(
        tenant.id, session.id, Exit(at(5)), frozenset({"practice"}), NOW, SHUT
    )
    await storage.ledger.settle(tenant.id, session.id, 0, 10, at(5))


# Found: the older sessions were kept ("already present") and the newer ledger added, an active
# session beside its own charge. Now refused before anything is stored.
async def test_importing_a_newer_export_over_an_older_one_is_refused_before_anything_is_stored(
    storage: Any, memory: Any
) -> None:
    """README: import is idempotent. A move is often done twice (a first copy, then a catch-up
    once clients point at the new store): the second import must either bring each record to
    its newer state or refuse (DESIGN: the same key with different content is a conflict);
    never a session still active in the new store whose charge its ledger already holds. It
    refuses, naming the session, and stores none of the newer file."""
    tenant = await add_tenant(memory, "acme")
    await memory.rates.put(tenant.id, Rate("practice", 2))
    session = await stored_session(memory, tenant, 0, kind="practice")
    await import_into(storage, await export(memory, "acme"))
    await closed_and_charged(memory, tenant, session)
    later = await stored_session(memory, tenant, 6, kind="practice")  # the first file lacks it
    newer = await export(memory, "acme")

    with pytest.raises(Conflict, match=f"session {session.id} is here as it was before"):
        await import_into(storage, newer)

    moved = await storage.sessions.get(tenant.id, session.id)
    balance = await storage.ledger.balance(tenant.id, "user-1")
    assert (moved.status, moved.charge_state, balance.consumed) == (
        SessionStatus.ACTIVE,
        ChargeState.NONE,
        0,
    )
    assert await storage.sessions.existing(tenant.id, [session.id, later.id]) == {session.id}


async def test_importing_a_file_again_keeps_a_session_the_store_has_taken_further(
    storage: Any, memory: Any
) -> None:
    """A file imported again (its first import failed partway) into a store that has moved on
    since, its server ending and charging a session the file has open: the import adds what
    is missing and keeps that session as the store has it."""
    tenant = await add_tenant(memory, "acme")
    await memory.rates.put(tenant.id, Rate("practice", 2))
    session = await stored_session(memory, tenant, 0, kind="practice")
    older = await export(memory, "acme")
    await import_into(storage, older)
    await closed_and_charged(storage, tenant, session)

    counts = await import_into(storage, older)

    assert counts.new["session"] == 0 and counts.present["session"] == 1, counts
    moved = await storage.sessions.get(tenant.id, session.id)
    balance = await storage.ledger.balance(tenant.id, "user-1")
    assert (moved.status, moved.charge_state, balance.consumed) == (
        SessionStatus.COMPLETED,
        ChargeState.CHARGED,
        10,
    )


async def a_session_with_three_ticks(storage: Any) -> tuple[Tenant, Session]:
    tenant = await add_tenant(storage, "acme")
    session = await stored_session(storage, tenant)
    ticks = [(n, event(session, n + 1, meters={"ticks": 1})) for n in range(3)]
    await storage.events.append(tenant.id, ticks, NOW, OPEN)
    return tenant, session


async def test_an_export_taken_while_a_client_sends_events_keeps_usage_the_sum_of_its_events(
    storage: Any,
) -> None:
    """The brief and MongoTenantArchive.export: each session's usage is the sum of its exported
    events (an event adds nothing to its session on import), even while clients write. Found
    by the review on every store; the SQL stores now export from one snapshot, the memory store
    reads whole first, MongoDB reads each session's events between two reads of it that agree
    (test_export_while_clients_write has them race)."""
    tenant, session = await a_session_with_three_ticks(storage)
    exported = await wired(storage).use_cases().export_tenant()(ExportTenantQuery("acme"))
    lines = []
    async for line in exported.lines:
        lines.append(line)
        if json.loads(line)["record"] == "session":  # the export has read the session
            late = event(session, 4, meters={"ticks": 1})
            assert (await storage.events.append(tenant.id, [(0, late)], NOW, OPEN)).inserted

    (exported_session,) = records(lines, "session")
    events = records(lines, "event")
    assert exported_session["usage"] == {"ticks": len(events)}, [e["sequence_no"] for e in events]


async def test_clients_write_while_an_export_reads(storage: Any, storage_url: str) -> None:
    """README (Choosing a storage backend): on SQLite WAL lets readers carry on beside the one
    writer; an export is a reader, run by an operator while the server serves clients. Found
    by the review: on SQLite the export's reads began IMMEDIATE, holding the write lock while
    they streamed a table (clients' writes waited up to busy_timeout, 30 s, then failed)."""
    tenant, session = await a_session_with_three_ticks(storage)
    server = storage if storage_url == "memory://" else open_storage(storage_url)
    exported = await wired(storage).use_cases().export_tenant()(ExportTenantQuery("acme"))
    late = event(session, 4, meters={"ticks": 1})
    writing: asyncio.Future[BatchOutcome] | None = None
    wrote_meanwhile = False
    try:
        async for line in exported.lines:
            if writing is None and json.loads(line)["record"] == "session":
                writing = asyncio.ensure_future(
                    server.events.append(tenant.id, [(0, late)], NOW, OPEN)
                )
                done, _ = await asyncio.wait({writing}, timeout=5)
                wrote_meanwhile = bool(done)
        assert writing is not None
        assert (await writing).inserted == 1  # once the export is done, at the latest
    finally:
        if server is not storage:
            await server.close()

    assert wrote_meanwhile


async def test_the_memory_stores_export_carries_a_sessions_event_gaps(memory: Any) -> None:
    """TenantArchive.export: the tenant's whole state, as SessionRepository.get reads it (with
    its usage and event gaps); the other stores export the gaps (load). Found by the review:
    the memory store exported its stored copies, without gaps."""
    tenant = await add_tenant(memory, "acme")
    session = await stored_session(memory, tenant)
    await memory.events.append(
        tenant.id, [(0, event(session, 1)), (1, event(session, 3))], NOW, OPEN
    )

    (exported,) = records(await export(memory, "acme"), "session")

    assert (await memory.sessions.get(tenant.id, session.id)).event_gaps == [(2, 2)]
    assert exported["event_gaps"] == [[2, 2]]


async def test_a_moved_tenant_keeps_its_usage_report_of_days_retention_has_thinned(
    storage: Any, memory: Any
) -> None:
    """README: a tenant moved between stores keeps identical figures; daily rollups are kept
    for good while snapshots go after 7 days. After a move, rolling up again on the new store
    (as its server does) cannot bring back traffic whose snapshots are gone."""
    tenant = await add_tenant(storage, "acme")
    session = await stored_session(storage, tenant, 10)
    await storage.sessions.close(tenant.id, session.id, Exit(at(70)), frozenset(), NOW, SHUT)
    await storage.snapshots.add(
        tenant.id, [Snapshot("lk", at(m), 10.0, 1.0, 1.0, m * 10**9, 2, 1) for m in (0, 30, 60)]
    )
    await (
        wired(storage, FakeClock(at(2 * 24 * 60)))
        .jobs()
        .roll_up_usage()(RollUpUsageCommand("acme"))
    )
    await retention_at(storage, 10 * 24 * 60, tenant)  # the snapshots are 10 days old
    later = FakeClock(at(10 * 24 * 60))

    await import_into(memory, await export(storage, "acme"))
    await wired(memory, later).jobs().roll_up_usage()(RollUpUsageCommand("acme", since=at(-60)))

    query = ReportUsageQuery(tenant.id, "day", at(-24 * 60), at(3 * 24 * 60))
    here = await wired(storage, later).use_cases().report_usage()(query)
    there = await wired(memory, later).use_cases().report_usage()(query)
    traffic = {d.bucket.label: d.traffic_gb for d in here if d.traffic_gb}
    assert traffic == {"2026-11-24": 60.0}
    assert {d.bucket.label: d.traffic_gb for d in there if d.traffic_gb} == traffic


# --- Retention ------------------------------------------------------------------------------

PAST_THE_WINDOW = 9 * 24 * 60  # minutes: 9 days, past the default 7-day late-data window


async def test_an_event_sent_again_after_retention_deleted_it_is_a_duplicate(
    storage: Any,
) -> None:
    """API.md: a (session_id, sequence_no) already stored is a duplicate and adds nothing;
    README: each is stored once, however often it is sent. Settings allow event_retention_days
    1 with the default 7-day late-data window: a kiosk that exits and replays its buffer on
    day 2 sends events retention deleted on day 2. Found by the review: they were stored and
    counted again; retention now leaves what clients may still send."""
    tenant = await add_tenant(storage, "acme", event_retention_days=1)
    session = await stored_session(storage, tenant)
    ticks = [event(session, n, meters={"ticks": 1}) for n in (1, 2, 3)]
    assert (await ingest(storage, tenant, 4, *ticks)).inserted == 3
    await storage.sessions.close(tenant.id, session.id, Exit(at(5)), frozenset(), NOW, SHUT)
    assert (await retention_at(storage, 2 * 24 * 60, tenant)).events == 0

    again = await ingest(storage, tenant, 2 * 24 * 60 + 1, *ticks)

    kept = await storage.sessions.get(tenant.id, session.id)
    assert (again.inserted, again.duplicates) == (0, 3), again
    assert (kept.usage, kept.event_count) == ({"ticks": 3}, 3)
    assert (await retention_at(storage, PAST_THE_WINDOW, tenant)).events == 3  # none resent now


async def test_session_retention_keeps_a_session_while_its_late_data_is_still_accepted(
    storage: Any,
) -> None:
    """API.md (Wave 2, Late events): events of an ended session dated at or before its end are
    accepted within late_data_window_seconds (default 7 days) after the end; settings accept
    session_retention_days 1. A kiosk that exits and flushes its buffer the next day must
    not lose it to retention. Found by the review: the session was deleted, its late events
    refused as unknown."""
    tenant = await add_tenant(storage, "acme", session_retention_days=1)
    session = await stored_session(storage, tenant)
    await storage.sessions.close(tenant.id, session.id, Exit(at(5)), frozenset(), NOW, SHUT)
    await retention_at(storage, 2 * 24 * 60, tenant)

    late = await ingest(storage, tenant, 2 * 24 * 60 + 1, event(session, 1, meters={"ticks": 1}))

    assert (late.inserted, late.rejections) == (1, []), late


async def test_retention_leaves_a_sessions_event_gaps_as_they_were(
    storage: Any, tenant: Tenant
) -> None:
    """README: sessions keep the usage and counts their events added; API.md: event_gaps are
    the missing sequence numbers. Events 1, 2 and 4 arrived; only 3 is missing, before and
    after retention deletes 1 and 2."""
    session = await stored_session(storage, tenant)
    await storage.events.append(
        tenant.id, [(i, event(session, n)) for i, n in enumerate((1, 2, 4))], NOW, OPEN
    )
    before = (await storage.sessions.get(tenant.id, session.id)).event_gaps

    assert await storage.retention.delete_events(tenant.id, at(3), 100) == 2

    after_retention = await storage.sessions.get(tenant.id, session.id)
    assert [tuple(g) for g in before] == [(3, 3)]
    assert [tuple(g) for g in after_retention.event_gaps] == [(3, 3)]


async def test_retention_in_batches_then_of_every_event_and_a_move_keep_the_gaps_that_were(
    storage: Any, tenant: Tenant, memory: Any
) -> None:
    """Events 1, 2, 4, 6, 7 arrived, each at its minute; retention deletes them two at a time,
    then all (the highest too): 3 and 5 stay the gaps. Moved to another store and back, the
    session keeps them. A late copy of 3 then fills its gap, 5 stays."""
    session = await stored_session(storage, tenant)
    arrived = [(i, event(session, n)) for i, n in enumerate((1, 2, 4, 6, 7))]
    await storage.events.append(tenant.id, arrived, NOW, OPEN)

    assert await storage.retention.delete_events(tenant.id, at(5), 2) == 2
    assert await storage.retention.delete_events(tenant.id, at(5), 2) == 1
    between = await storage.sessions.get(tenant.id, session.id)
    assert await storage.retention.delete_events(tenant.id, at(8), 10) == 2
    emptied = await storage.sessions.get(tenant.id, session.id)
    await import_into(memory, await export(storage, tenant.name))
    moved = await memory.sessions.get(tenant.id, session.id)
    late = replace(event(session, 3), at=at(9))
    await storage.events.append(tenant.id, [(0, late)], NOW, OPEN)
    filled = await storage.sessions.get(tenant.id, session.id)

    assert [tuple(g) for g in between.event_gaps] == [(3, 3), (5, 5)]
    assert [tuple(g) for g in emptied.event_gaps] == [(3, 3), (5, 5)]
    assert [tuple(g) for g in moved.event_gaps] == [(3, 3), (5, 5)]
    assert [tuple(g) for g in filled.event_gaps] == [(5, 5)]
    # As the API answers them: pairs of numbers, whatever the driver gave (asyncpg: Records).
    assert {type(g) for g in [*emptied.event_gaps, *filled.event_gaps]} == {tuple}


async def an_expired_kiosk_session(storage: Any) -> tuple[Tenant, Session]:
    """A session ended 9 days ago, past session_retention_days 1 and the late-data window."""
    tenant = await add_tenant(storage, "acme", session_retention_days=1)
    session = await stored_session(storage, tenant, kind="kiosk")
    await storage.sessions.close(tenant.id, session.id, Exit(at(5)), frozenset(), NOW, SHUT)
    return tenant, session


def sells(tenant: Tenant, session: Session, **ports: Any) -> Any:
    """A racer recording one sale of the session, with any of its ports replaced."""

    async def call(s: Any) -> Any:
        clock = FakeClock(at(PAST_THE_WINDOW))
        use_case = wired(s, clock, **{n: p(s) for n, p in ports.items()}).use_cases()
        sale = a_sale("sale-1", session.id, 4)
        return await use_case.record_sales()(RecordSalesCommand(tenant.id, [sale]))

    return call


async def test_a_sale_recorded_while_retention_runs_never_loses_its_session(
    storage: Any, race: Race
) -> None:
    """API.md: sales are kept for good, and a session a sale refers to is never deleted by
    retention. Forced: the sale's use case has found its session and is about to store the
    sale when retention runs whole. Found by the review on every store (the use case checked,
    then stored): a stored sale whose session was gone. Now the sale is refused."""
    tenant, session = await an_expired_kiosk_session(storage)
    reached, go = threading.Event(), threading.Event()
    paused = sells(tenant, session, sales=lambda s: Pause(s.sales, "add", reached, go))

    recorded, _ = await race(
        paused, after(reached, go, lambda s: retention_at(s, PAST_THE_WINDOW, tenant))
    )

    assert await storage.sales.get_many(tenant.id, ["sale-1"]) == {}
    assert [r.error for r in recorded.rejections] == [
        "validation_error: session_id: no such session in this tenant"
    ]


async def test_a_sale_stored_while_retention_has_picked_its_session_keeps_it(
    storage: Any, race: Race
) -> None:
    """The other order: retention has picked the expired session to delete when the sale is
    stored whole; retention then keeps the session, and the sale is there."""
    tenant, session = await an_expired_kiosk_session(storage)
    reached, go = threading.Event(), threading.Event()

    async def retains(s: Any) -> Any:
        paused = Pause(s.erasure, "delete_sessions", reached, go)
        retention = wired(s, FakeClock(at(PAST_THE_WINDOW)), erasure=paused).jobs()
        return await retention.apply_retention()(ApplyRetentionCommand(tenant.name))

    await race(retains, after(reached, go, sells(tenant, session)))

    assert list(await storage.sales.get_many(tenant.id, ["sale-1"])) == ["sale-1"]
    assert await storage.sessions.get(tenant.id, session.id) is not None
