"""A hostile review of three commits: an import refusing a newer export over an older import
(application/transfer/import_tenant.py, d792cc0), MongoDB's reaper pass finishing the track ends
a dead write left in flight (adapters/mongodb/livekit.py, daf504e), and the storages' wait for a
database that does not answer (adapters/mongodb/storage.py and errors.py, 1121597). Each test
names the promise it holds the code to; the xfail ones are the findings (their reason is the
defect)."""

import contextlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from adapters.mongodb.errors import described
from adapters.mongodb.livekit import MongoTrackLog
from adapters.mongodb.storage import MongoStorage, connect
from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from application.storage import StorageError
from domain.credits import Rate
from domain.erasure import is_pseudonym
from domain.errors import Conflict
from domain.livekit import TrackReport
from domain.session import ChargeState, Session, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, add_tenant, at, event, stored_session, wired
from tests.contract.erasure_builders import erase
from tests.contract.test_archive import CAMERA, export
from tests.contract.test_mongodb_export_pages_review import Before, Died, on_mongodb
from tests.contract.test_mongodb_track_ends_recovery import (
    BEFORE_THE_COUNT,
    BEFORE_THE_INSERT,
    PAST_THE_BOUND,
    Left,
    a_write_that_dies,
    crash,
    later,  # noqa: F401 - a fixture, asked for by name
    left,
    pass_on,
)
from tests.contract.test_transfer_and_retention_review import closed_and_charged, import_into
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


# --- d792cc0: an import over an older import -----------------------------------------------


async def acme_with_a_practice(storage: Any, name: str = "acme") -> tuple[Tenant, Session]:
    """A tenant whose practice sessions cost 2 credits a minute, and one of them, active, last
    seen at minute 3."""
    tenant = await add_tenant(storage, name)
    await storage.rates.put(tenant.id, Rate("practice", 2))
    session = await stored_session(storage, tenant, 0, kind="practice")
    await storage.sessions.heartbeat(tenant.id, session.id, at(3))
    return tenant, session


async def reaped(storage: Any) -> None:
    """The store's reaper at minute 60: the practice, silent since minute 3, is timed out at 3
    and charged 6 credits."""
    await wired(storage, FakeClock(at(60))).jobs().reap_stale_sessions()(ReapStaleSessionsCommand())


async def clients_end_over_reapers_guess(
    storage: Any, memory: Any
) -> tuple[Tenant, Session, list[str]]:
    """A first copy of acme goes to the store, whose reaper times the active practice out at
    minute 3 (6 credits); on the old store its client exits at minute 5 (10 credits): the
    newer export of it."""
    tenant, session = await acme_with_a_practice(memory)
    await import_into(storage, await export(memory, "acme"))
    await reaped(storage)
    timed_out = await storage.sessions.get(tenant.id, session.id)
    assert (timed_out.status, timed_out.charge_state) == (
        SessionStatus.TIMED_OUT,
        ChargeState.CHARGED,
    )
    await closed_and_charged(memory, tenant, session)
    return tenant, session, await export(memory, "acme")


async def test_a_newer_file_whose_session_the_client_ended_is_not_kept_as_the_reaper_guessed(
    storage: Any, memory: Any
) -> None:
    """README (Moving a tenant): an import that finds one of its sessions stored as it was
    before is refused; only one the store has taken further (its reaper timed out one the file
    has open) is kept. domain/session.py: the reaper's end is a guess the client's own exit
    replaces. A file whose session its client ended, over a store that only guessed its end,
    is not "taken further" there: the import refuses it (or brings the client's end)."""
    _, session, newer = await clients_end_over_reapers_guess(storage, memory)

    with pytest.raises(Conflict, match=f"session {session.id}"):
        await import_into(storage, newer)


async def test_whatever_a_newer_file_leaves_a_session_charged_once_per_revision(
    storage: Any, storage_url: str, memory: Any, request: pytest.FixtureRequest
) -> None:
    """The ledger is unique on (session, revision) (DEVELOPERS.md, Charges): whatever an import
    of a newer file over the reaper's guess does, the subject's ledger holds the session's
    charge once, and what it consumed is the session's charge."""
    (
        tenant,
        session,
        newer,
    ) = await clients_end_over_reapers_guess(storage, memory)

    with contextlib.suppress(Conflict):
        await import_into(storage, newer)
    moved = await storage.sessions.get(tenant.id, session.id)
    balance = await storage.ledger.balance(tenant.id, "user-1")
    assert moved.charge is not None and balance.consumed == moved.charge.credits, (
        balance,
        moved.charge,
    )


async def test_a_newer_file_after_an_erasure_on_the_old_store_does_not_bring_back_the_person(
    storage: Any, memory: Any
) -> None:
    """README (Forgetting a person; Moving a tenant): an erased subject's sessions carry a
    pseudonym; an import that finds one of its sessions stored as it was before is refused.
    The person erased on the old store between the first copy and the catch-up is not left
    under her id on the new store: the import refuses, or the session is erased there too."""
    tenant, session = await acme_with_a_practice(memory)
    await import_into(storage, await export(memory, "acme"))
    await erase(memory, tenant, "user-1")
    newer = await export(memory, "acme")

    try:
        await import_into(storage, newer)
    except Conflict:
        return
    moved = await storage.sessions.get(tenant.id, session.id)
    assert is_pseudonym(moved.subject_id), moved.subject_id


async def test_a_file_imported_again_after_the_stores_reaper_charged_its_session_is_taken(
    storage: Any, memory: Any
) -> None:
    """README: a file whose first import failed partway can still be imported again into a
    store that serves meanwhile; a session its reaper timed out and charged (the file has it
    open) is kept as it is there."""
    tenant, session = await acme_with_a_practice(memory)
    older = await export(memory, "acme")
    await import_into(storage, older)
    await reaped(storage)

    counts = await import_into(storage, older)

    assert (counts.new["session"], counts.present["session"]) == (0, 1), counts
    moved = await storage.sessions.get(tenant.id, session.id)
    balance = await storage.ledger.balance(tenant.id, "user-1")
    assert (moved.status, moved.charge_state, balance.consumed) == (
        SessionStatus.TIMED_OUT,
        ChargeState.CHARGED,
        6,
    )


async def test_a_file_imported_again_after_retention_deleted_its_events_is_taken(
    storage: Any, memory: Any
) -> None:
    """README: importing the same file again adds the rest, also after the new store's
    retention deleted events of an imported session (its gaps then say so; the file's do
    not): the import is not refused, and the session keeps its count."""
    tenant, session = await acme_with_a_practice(memory)
    await memory.events.append(
        tenant.id, [(0, event(session, 1)), (1, event(session, 2))], NOW, OPEN
    )
    older = await export(memory, "acme")
    await import_into(storage, older)
    assert await storage.retention.delete_events(tenant.id, at(3), 100) == 2

    counts = await import_into(storage, older)

    assert counts.new["session"] == 0, counts
    moved = await storage.sessions.get(tenant.id, session.id)
    assert (moved.status, moved.event_count, moved.max_sequence_no) == (SessionStatus.ACTIVE, 2, 2)


async def test_a_file_imported_again_after_an_erasure_on_the_new_store_keeps_it_erased(
    storage: Any, memory: Any
) -> None:
    """README: importing the same file again works into a store that serves meanwhile; an
    erasure it ran there is kept: the session the file names under its subject stays under
    the pseudonym (a record the store holds is kept as it is there), and is not refused."""
    tenant, session = await acme_with_a_practice(memory)
    older = await export(memory, "acme")
    await import_into(storage, older)
    await erase(storage, tenant, "user-1")

    counts = await import_into(storage, older)

    assert counts.new["session"] == 0, counts
    moved = await storage.sessions.get(tenant.id, session.id)
    assert is_pseudonym(moved.subject_id), moved.subject_id


async def test_a_session_past_the_first_500_of_the_file_is_checked_too(
    storage: Any, memory: Any
) -> None:
    """ImportTenant: Conflict if the store holds a session of the file as it was before,
    before anything is stored; the check goes 500 sessions at a time: the 501st session of the
    file (the last, in the file's order) is checked as the first."""
    tenant = await add_tenant(memory, "acme")
    await memory.rates.put(tenant.id, Rate("practice", 2))
    sessions = [await stored_session(memory, tenant, 0, kind="practice") for _ in range(501)]
    await import_into(storage, await export(memory, "acme"))
    last = max(sessions, key=lambda s: s.id)  # the memory store exports them by id
    await closed_and_charged(memory, tenant, last)
    newer = await export(memory, "acme")
    assert json.loads([line for line in newer if '"session"' in line][-1])["id"] == last.id
    later_one = await stored_session(memory, tenant, 6, kind="practice")
    newer = await export(memory, "acme")

    with pytest.raises(Conflict, match=f"session {last.id}"):
        await import_into(storage, newer)

    assert await storage.sessions.existing(tenant.id, [later_one.id]) == set()


def one_file(*exports: list[str]) -> list[str]:
    """One file of several tenants' exports: the first's header, every record, one end line
    counting them all."""
    body = [line for lines in exports for line in lines[1:-1]]
    end = json.loads(exports[0][-1])
    end["records"] = len(body)
    return [exports[0][0], *body, json.dumps(end)]


async def test_a_second_tenant_of_one_file_is_checked_under_its_own_id(
    storage: Any, memory: Any
) -> None:
    """ImportTenant: each record is stored as a record of the tenant before it in the file;
    the check of sessions held as they were before looks under that same tenant: a file of
    two tenants whose second the store holds an older import of is refused, naming its
    session, and nothing of the first is stored."""
    first, first_session = await acme_with_a_practice(memory, "first")
    second, second_session = await acme_with_a_practice(memory, "second")
    await import_into(storage, await export(memory, "second"))
    await closed_and_charged(memory, second, second_session)
    both = one_file(await export(memory, "first"), await export(memory, "second"))

    with pytest.raises(Conflict, match=f"session {second_session.id}"):
        await import_into(storage, both)

    assert await storage.tenants.get_by_name("first") is None
    assert first_session.id not in await storage.sessions.existing(first.id, [first_session.id])


# --- daf504e: MongoDB's reaper pass and the track ends in flight ----------------------------


@on_mongodb
async def test_a_write_whose_insert_outlived_the_bound_still_counts_its_ends(
    storage: MongoStorage,
    later: Callable[[timedelta], None],  # noqa: F811 - the fixture imported above
) -> None:
    """daf504e: nothing is counted twice or lost; a write slower than the bound finds its
    count done. A write slowed before its insert (the driver's wait for a server, then a slow
    server) past the bound, while a pass finishes its stay: its two ends are stored, and the
    stay counts them, once."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")

    async def the_pass_past_the_bound() -> None:
        later(PAST_THE_BOUND)
        await pass_on(storage.db, tenant)

    hooked = Before(storage.db, *BEFORE_THE_INSERT, the_pass_past_the_bound)
    assert await MongoTrackLog(hooked).record(tenant.id, stay.id, CAMERA)  # type: ignore[arg-type]

    assert hooked.ran
    assert await left(storage, tenant, stay) == Left(0, 2, 2, [])


@on_mongodb
async def test_a_write_that_outlived_the_bound_does_not_count_a_newer_writes_ends(
    storage: MongoStorage,
    later: Callable[[timedelta], None],  # noqa: F811 - the fixture imported above
) -> None:
    """daf504e: a write that outlived the bound counts nothing twice; ends a write that died
    never stored are a gap. The first write (the camera) is counted by a pass past the bound
    before it counts; meanwhile a second track of the stay numbers its two ends and dies
    before storing them. Once a later pass has run, the stay counts the camera's two ends
    once, and shows the second's as a gap (a stay's gaps are among its stored numbers: once a
    client's event 5 is stored)."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    second = TrackReport("TR_cam_2", "video.seconds", at(34), at(36))

    async def a_pass_then_a_newer_write_that_dies() -> None:
        later(PAST_THE_BOUND)
        await pass_on(storage.db, tenant)
        assert await left(storage, tenant, stay) == Left(0, 2, 2, [])
        with pytest.raises(Died):
            await a_write_that_dies_of(storage, tenant, stay, second)

    hooked = Before(storage.db, *BEFORE_THE_COUNT, a_pass_then_a_newer_write_that_dies)
    assert await MongoTrackLog(hooked).record(tenant.id, stay.id, CAMERA)  # type: ignore[arg-type]
    assert hooked.ran
    later(2 * PAST_THE_BOUND)
    await pass_on(storage.db, tenant)
    assert (await storage.events.append(tenant.id, [(0, event(stay, 5))], NOW, OPEN)).inserted

    assert (found := await left(storage, tenant, stay)) == Left(0, 3, 3, [(3, 4)]), found


async def a_write_that_dies_of(
    storage: MongoStorage, tenant: Tenant, stay: Session, report: Any
) -> None:
    """A track write of `report` into `stay`, whose process dies before it inserts its ends."""
    hooked = Before(storage.db, *BEFORE_THE_INSERT, crash)
    await MongoTrackLog(hooked).record(tenant.id, stay.id, report)  # type: ignore[arg-type]


@on_mongodb
async def test_a_dead_writes_ends_are_finished_though_a_newer_write_came_and_went(
    storage: MongoStorage,
    later: Callable[[timedelta], None],  # noqa: F811 - the fixture imported above
) -> None:
    """daf504e: ends in flight ENDS_DEAD_AFTER after the last numbering are a dead write's and
    are finished by a pass. A write dies before counting its ends; a newer write of another
    track of the stay comes and counts its own (its numbering stamps the stay anew): a pass
    past the bound after it finishes the dead one's, each end counted once."""
    tenant = await add_tenant(storage, "acme")
    stay = await stored_session(storage, tenant, 30, kind="livekit", resource_id="room-1")
    await a_write_that_dies(storage, tenant, stay, BEFORE_THE_COUNT)
    second = TrackReport("TR_cam_2", "video.seconds", at(34), at(36))
    assert await storage.tracks.record(tenant.id, stay.id, second)
    assert await left(storage, tenant, stay) == Left(2, 2, 4, [], stamped=True)

    later(PAST_THE_BOUND)
    await pass_on(storage.db, tenant)

    assert await left(storage, tenant, stay) == Left(0, 4, 4, [])


# --- 1121597: a database that does not answer --------------------------------------------


@pytest.mark.parametrize(
    ("url", "waits"),
    [
        ("mongodb://127.0.0.1:1,127.0.0.1:2/x", 5.0),
        ("mongodb://127.0.0.1:1,127.0.0.1:2/x?replicaSet=rs0&serverSelectionTimeoutMS=1234", 1.234),
        ("mongodb://127.0.0.1:1/x?SERVERSELECTIONTIMEOUTMS=700", 0.7),
        ("mongodb+srv://cluster0.example.invalid/x?retryWrites=true", 5.0),
    ],
    ids=["hosts", "hosts-own-wait", "own-wait-any-case", "srv"],
)
def test_a_commands_wait_fits_every_kind_of_mongodb_url(url: str, waits: float) -> None:
    """connect: a client of the URL's servers waits `wait_seconds` for one to answer, unless
    the URL sets serverSelectionTimeoutMS (its option names in any case, as pymongo reads
    them); a seed list (mongodb+srv) or several hosts open without I/O."""
    client = connect(url, 5.0)
    assert client.options.server_selection_timeout == waits


def test_a_server_keeps_pymongos_wait() -> None:
    """Settings.storage_wait_seconds None (a server's workers): pymongo's own 30 s."""
    assert connect("mongodb://127.0.0.1:1/x").options.server_selection_timeout == 30


@on_mongodb
async def test_a_server_that_answers_but_does_not_fit_is_not_said_to_be_silent(
    storage_url: str,
) -> None:
    """1121597: the error names the servers and why none could be used, an operator's lead;
    a server that answered (of another replica set, a secondary when a primary is wanted) is
    not reported as one that did not answer."""
    url = storage_url + ("&" if "?" in storage_url else "?") + "replicaSet=nope"
    storage = MongoStorage(url, wait_seconds=0.5)
    try:
        with pytest.raises(StorageError) as raised:
            await storage.tenants.all()
    finally:
        await storage.close()
    assert "nope" in str(raised.value), raised.value
    assert "no MongoDB server answered" not in str(raised.value), raised.value


def test_the_described_error_of_a_replica_set_without_a_primary_says_so() -> None:
    """1121597: pymongo's message when its servers answered but none is a primary (an
    election) keeps its first part; only the topology after it goes."""
    from pymongo.errors import ServerSelectionTimeoutError

    error = ServerSelectionTimeoutError(
        "No primary available for writes, Timeout: 5.0s, Topology Description: "
        "<TopologyDescription id: 1, topology_type: ReplicaSetNoPrimary, servers: [...]>"
    )
    assert "No primary available for writes" in described(error)
    assert "Topology" not in described(error)
