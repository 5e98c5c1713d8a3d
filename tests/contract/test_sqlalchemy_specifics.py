"""What only the SQL family has to prove: its migrations, URLs and the SQLite default."""

import asyncio
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import inspect, select, text

from adapters.sqlalchemy import asyncpg_sessions
from adapters.sqlalchemy.asyncpg_statements import asyncpg_connection
from adapters.sqlalchemy.driver_steps import in_transaction
from adapters.sqlalchemy.engine import async_url
from adapters.sqlalchemy.event_batches import BatchWriter
from adapters.sqlalchemy.events import batch_writers
from adapters.sqlalchemy.quantities import from_nanos, to_nanos
from adapters.sqlalchemy.sqlite_statements import release_writers_connection
from adapters.sqlalchemy.storage import SqlAlchemyStorage
from adapters.sqlalchemy.tables import events, metadata
from application.ports import Window
from application.storage import StorageError
from application.telemetry.ports import SESSION_GONE
from domain.calendar import Period
from domain.charging import Priced
from domain.errors import Conflict
from domain.session import Exit, Session, SessionStatus
from domain.staleness import Staleness
from domain.tenants import Tenant
from domain.usage import MAX_QUANTITY
from tests.contract.builders import NOW, OPEN, add_tenant, at, batch, event, stored_session
from tests.contract.telemetry_builders import a_sale

pytestmark = pytest.mark.anyio


async def test_migrating_an_empty_sqlite_file_creates_the_schema_and_is_repeatable(
    tmp_path: Path,
) -> None:
    storage = SqlAlchemyStorage(f"sqlite:///{tmp_path}/fresh.db")
    try:
        await storage.migrate()
        await storage.migrate()
        async with storage.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await storage.close()

    assert {"tenants", "api_keys", "sessions", "session_meters", "events"} <= tables
    assert (tmp_path / "fresh.db").exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///./sessionmeter.db", "sqlite+aiosqlite:///./sessionmeter.db"),
        ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_urls_as_users_write_them_get_the_async_driver(given: str, expected: str) -> None:
    assert async_url(given) == expected


@pytest.mark.parametrize(
    "quantity", [0, 7, 999_999_999, Decimal("0.000000001"), Decimal("123456.789"), Decimal("1")]
)
def test_quantities_survive_nano_units_exactly(quantity: int | Decimal) -> None:
    assert from_nanos(to_nanos(quantity), isinstance(quantity, Decimal)) == quantity


async def test_the_migrations_build_the_tables_the_code_declares(tmp_path: Path) -> None:
    storage = SqlAlchemyStorage(f"sqlite:///{tmp_path}/m.db")
    try:
        await storage.migrate()
        async with storage.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
    finally:
        await storage.close()
    assert diff == []


METERS_ADDED = text(
    "INSERT INTO session_meters (tenant_id, session_id, meter, quantity_nanos, is_decimal)"
    " VALUES (:t, :i, 'minutes', :n, false)"
)
Done = TypeVar("Done")


async def after_a_holder_added_minutes(
    storage: Any, session: Session, minutes: int, waiting: Callable[[], Coroutine[Any, Any, Done]]
) -> Done:
    """`waiting()` begun while another transaction holds the session (it writes the session and
    adds `minutes` to its meters, as every writer holding a session does), which it waits for;
    what it gave once that transaction committed."""
    key = {"t": session.tenant_id, "i": session.id}
    async with storage.engine.connect() as holder:
        await holder.execute(
            text("UPDATE sessions SET event_count = event_count WHERE tenant_id = :t AND id = :i"),
            key,
        )
        await holder.execute(METERS_ADDED, {**key, "n": to_nanos(minutes)})
        task = asyncio.create_task(waiting())
        await asyncio.sleep(0.5)
        assert not task.done()  # it waits for the lock
        await holder.commit()
    return await task


def on_postgresql(storage_url: str) -> None:
    if not storage_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's row locks and row versions under READ COMMITTED")


async def test_an_exit_that_waited_for_the_lock_reads_the_usage_its_holder_added(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """PostgreSQL re-reads the rows a waiting statement locks, but nothing else: an exit that
    waited for a writer (one that writes the session and adds to its meters, as every writer
    holding a session does) must price the session with what that writer added."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant)

    closed, _ = await after_a_holder_added_minutes(
        storage,
        session,
        5,
        lambda: storage.sessions.close(
            tenant.id, session.id, Exit(at=at(1)), frozenset(), NOW, OPEN
        ),
    )

    assert closed.usage == {"minutes": 5}


async def test_a_batch_that_waited_for_the_lock_judges_its_meters_by_what_the_holder_added(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """As for the exit: a batch that waited for a writer of its session must judge its meters
    against the usage that writer added (here, all but the last unit a meter may hold)."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant)

    outcome = await after_a_holder_added_minutes(
        storage,
        session,
        MAX_QUANTITY - 1,
        lambda: storage.events.append(
            tenant.id, batch(event(session, 1, meters={"minutes": 1})), NOW, OPEN
        ),
    )

    assert (outcome.inserted, [r.error for r in outcome.rejections]) == (
        0,
        [f"validation_error: meters.minutes: the session's total would reach {MAX_QUANTITY}"],
    )
    assert (await storage.sessions.get(tenant.id, session.id)).usage == {
        "minutes": MAX_QUANTITY - 1
    }


async def test_a_sale_waits_for_retention_deleting_its_session_and_is_refused(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """Retention's delete of an unbilled session holds the row (SqlErasure.delete_sessions):
    a sale of that session stored meanwhile must wait for it and find the session gone, not
    read the row that is being deleted and be stored without it."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant)
    key = {"t": tenant.id, "i": session.id}
    async with storage.engine.connect() as retention:
        held = "SELECT id FROM sessions WHERE tenant_id = :t AND id = :i FOR UPDATE"
        await retention.execute(text(held), key)
        task = asyncio.create_task(storage.sales.add(tenant.id, [a_sale("sale-1", session.id)]))
        await asyncio.sleep(0.5)
        assert not task.done()  # it waits for the lock
        await retention.execute(text("DELETE FROM sessions WHERE tenant_id = :t AND id = :i"), key)
        await retention.commit()

    assert await task == [SESSION_GONE]
    assert await storage.sales.get_many(tenant.id, ["sale-1"]) == {}


def forgotten(storage: Any, tenant: Tenant, session: Session) -> None:
    """The process no longer remembers the session as its start wrote it: its next change
    reads it (test_remembered_lifecycle.py: the changes made as remembered)."""
    storage.sessions.remembered.forget(tenant.id, [session.id])


async def test_an_exit_reads_usage_added_between_its_read_and_its_write(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exit reads the session, then writes it unless it changed. Usage can be added without
    writing the session's row (a LiveKit track's seconds): that too is a change, and the exit
    is then taken under the lock, with the usage."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant)
    forgotten(storage, tenant, session)
    read_versioned = asyncpg_sessions.read_versioned

    async def read_then_usage_added(*args: Any, **kwargs: Any) -> Any:
        read = await read_versioned(*args, **kwargs)
        async with storage.engine.begin() as other:
            await other.execute(METERS_ADDED, {"t": tenant.id, "i": session.id, "n": to_nanos(5)})
        return read

    monkeypatch.setattr(asyncpg_sessions, "read_versioned", read_then_usage_added)
    closed, closing = await storage.sessions.close(
        tenant.id, session.id, Exit(at=at(1)), frozenset(), NOW, OPEN
    )
    monkeypatch.undo()

    assert closed.usage == {"minutes": 5}
    assert closing.changed
    assert (await storage.sessions.get(tenant.id, session.id)).ended_at == at(1)


async def test_a_heartbeat_never_undoes_an_exit_written_between_its_read_and_its_write(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heartbeat reads the session, then writes it unless it changed: an exit written in
    between is a change, and the heartbeat, taken again under the lock, finds it ended."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant)
    forgotten(storage, tenant, session)
    read_versioned = asyncpg_sessions.read_versioned
    exited: list[bool] = []

    async def read_then_exit(*args: Any, **kwargs: Any) -> Any:
        read = await read_versioned(*args, **kwargs)
        if not exited:
            exited.append(True)
            exit = Exit(at=at(1))
            await storage.sessions.close(tenant.id, session.id, exit, frozenset(), NOW, OPEN)
        return read

    monkeypatch.setattr(asyncpg_sessions, "read_versioned", read_then_exit)
    with pytest.raises(Conflict):
        await storage.sessions.heartbeat(tenant.id, session.id, at(2))
    monkeypatch.undo()

    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.status, stored.ended_at, stored.last_seen_at) == (
        SessionStatus.COMPLETED,
        at(1),
        at(1),
    )


async def _connections_dropped_by_the_database(storage_url: str) -> None:
    """What a database restart or an idle-connection timeout does: every other connection
    closed from the server's side."""
    admin = await asyncpg.connect(storage_url)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND datname = current_database()"
        )
    finally:
        await admin.close()


@pytest.mark.parametrize("first", ["a hot path", "a SQLAlchemy statement"])
async def test_the_hot_paths_recover_from_connections_the_database_dropped(
    storage: Any, storage_url: str, tenant: Tenant, first: str
) -> None:
    """The hot paths give connections back to the pool without SQLAlchemy's greenlet: a
    connection the database dropped fails the request that finds it (nothing tells the pool
    before) with a storage error, and is opened again by the next that takes it. Whether a
    SQLAlchemy statement found its own pool's dropped first or not, the service comes back."""
    on_postgresql(storage_url)
    # Several idle connections in the pool, each of which the database will have dropped (reads
    # at once: concurrent starts share one statement, so one connection).
    sessions = await asyncio.gather(*(stored_session(storage, tenant) for _ in range(5)))
    await asyncio.gather(*(storage.sessions.get(tenant.id, s.id) for s in sessions))
    pool = storage.driver_engine.sync_engine.pool
    assert pool.checkedin() >= 2
    await _connections_dropped_by_the_database(storage_url)

    if first == "a SQLAlchemy statement":
        with pytest.raises(StorageError):
            await storage.tenants.get(tenant.id)
    failures = 0
    while failures <= pool.size():
        try:
            assert await storage.sessions.get(tenant.id, sessions[0].id) is not None
            break
        except StorageError:  # one per connection the database dropped, never a 500
            failures += 1
    assert failures <= pool.size()

    # Every connection now works, opened again where it had been dropped.
    exits = [
        storage.sessions.close(tenant.id, s.id, Exit(at=at(1)), frozenset(), NOW, OPEN)
        for s in sessions
    ]
    closed = await asyncio.gather(*exits)
    assert all(c.ended_at == at(1) for c, _ in closed)
    assert pool.overflow() <= 0


async def test_sqlite_writers_of_a_process_take_turns_on_one_connection(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """SQLite has one writer: a process's writers queue on one connection, kept for them, whose
    thread runs their steps one after the other; the pool's other connections serve reads. It
    goes back to the pool when the storage closes, so that disposing of the engine closes it."""
    if not storage_url.startswith("sqlite"):
        pytest.skip("SQLite's one writer")
    sessions = await asyncio.gather(*(stored_session(storage, tenant) for _ in range(20)))
    exits = [
        storage.sessions.close(tenant.id, s.id, Exit(at=at(1)), frozenset(), NOW, OPEN)
        for s in sessions
    ]
    closed = await asyncio.gather(*exits)
    pool = storage.engine.sync_engine.pool

    assert all(c.ended_at == at(1) for c, _ in closed)
    assert pool.checkedout() == 1  # the writers' connection
    await release_writers_connection(storage.engine)
    assert pool.checkedout() == 0


# Another process writing batches of events into the SQLite file at argv[1], for tenant argv[2],
# from 4 writers at once, until it is stopped; it prints a line once it writes.
FULL_SPEED_WRITER = """
import asyncio, itertools, sys
from adapters.sqlalchemy.storage import SqlAlchemyStorage
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, batch, event, stored_session

async def main():
    storage = SqlAlchemyStorage(sys.argv[1])
    tenant = Tenant(sys.argv[2], "acme", NOW)

    async def writer():
        session = await stored_session(storage, tenant)
        for first in itertools.count(1, 100):
            events = [event(session, n) for n in range(first, first + 100)]
            await storage.events.append(tenant.id, batch(*events), NOW, OPEN)
            print("writing", flush=True)

    await asyncio.gather(*(writer() for _ in range(4)))

asyncio.run(main())
"""


async def test_sqlite_writers_of_another_process_get_their_turn_while_one_writes_at_full_speed(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """Two server workers on one SQLite file: while one has a batch queued the moment its last
    ends, the other's batches each wait for a turn (sqlite_statements.WritersLockFile), not in
    SQLite's busy handler, which slept and found the lock taken each time it looked."""
    if not storage_url.startswith("sqlite"):
        pytest.skip("SQLite's one writer")
    session = await stored_session(storage, tenant)
    other = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        FULL_SPEED_WRITER,
        storage_url,
        tenant.id,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert other.stdout is not None
        await other.stdout.readline()  # it writes
        waits = []
        for first in range(1, 2000, 100):
            events = [event(session, n) for n in range(first, first + 100)]
            asked = time.perf_counter()
            await storage.events.append(tenant.id, batch(*events), NOW, OPEN)
            waits.append(time.perf_counter() - asked)
    finally:
        other.kill()
        await other.wait()

    # Each waited a few ms here; in the busy handler some waited 0.5-4 s.
    assert max(waits) < 0.5, [round(wait, 3) for wait in waits]


async def test_sqlite_writers_without_a_lock_file_they_may_open_still_write(
    tmp_path: Path,
) -> None:
    """The lock file only makes the turns fair: where it cannot be opened (here, a link into a
    folder that does not exist), the writers queue in SQLite's busy handler and every write
    goes through."""
    storage = SqlAlchemyStorage(f"sqlite:///{tmp_path}/shared.db")
    (tmp_path / "shared.db-writers").symlink_to(tmp_path / "missing" / "writers")
    try:
        await storage.migrate()
        tenant = await add_tenant(storage)
        session = await stored_session(storage, tenant)
        stored = await storage.events.append(tenant.id, batch(event(session, 1)), NOW, OPEN)
    finally:
        await release_writers_connection(storage.engine)
        await storage.close()

    assert stored.inserted == 1
    assert not (tmp_path / "missing").exists()


async def test_a_batch_locks_its_sessions_without_reading_their_gaps(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """Finding a session's gaps reads all of its events: a batch, which does not need them,
    skips that, or a session that lost one event would pay for it on every later batch."""
    if not storage_url.startswith(("sqlite", "postgresql")):
        pytest.skip("the SQL family's batch writers")
    session = await stored_session(storage, tenant)
    await storage.events.append(tenant.id, batch(event(session, 1), event(session, 3)), NOW, OPEN)

    async def lock(writer: BatchWriter) -> list[tuple[int, int]]:
        locked = await writer.lock_sessions({session.id}, set())
        return locked[session.id].event_gaps

    assert await in_transaction(storage.engine, batch_writers(tenant.id), lock) == []
    assert (await storage.sessions.get(tenant.id, session.id)).event_gaps == [(2, 2)]


async def test_a_batchs_instants_are_stored_as_sqlalchemy_binds_them(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """The batch writers make their rows themselves (on SQLite, of one JSON document), and
    SQLite keeps instants as text: one written otherwise than SQLAlchemy binds it (another
    precision, a `T`) would be missed by every statement that compares it, retention's cutoff
    and the reports' ranges among them."""
    if not storage_url.startswith(("sqlite", "postgresql")):
        pytest.skip("the SQL family's batch writers")
    session = await stored_session(storage, tenant)
    instants = [at(1), at(2) + timedelta(milliseconds=7), at(3) + timedelta(milliseconds=120)]
    written = [replace(event(session, n), at=instant) for n, instant in enumerate(instants, 1)]
    await storage.events.append(tenant.id, batch(*written), NOW, OPEN)

    async with storage.engine.connect() as connection:
        for e in written:
            found = select(events.c.sequence_no).where(
                events.c.tenant_id == tenant.id, events.c.at == e.at
            )
            assert (await connection.execute(found)).scalars().all() == [e.sequence_no]


async def test_postgresql_analyses_the_sessions_after_a_small_share_of_them_changed(
    storage: Any, storage_url: str
) -> None:
    """Without statistics that know a tenant, PostgreSQL reads its sessions through an index on
    the tenant alone (migration 0021 says why): the table is re-analysed after 0.2 % of it
    changed, not PostgreSQL's 10 %."""
    on_postgresql(storage_url)
    async with storage.engine.connect() as conn:
        options = await conn.scalar(
            text("SELECT reloptions FROM pg_class WHERE relname = 'sessions'")
        )
    assert "autovacuum_analyze_scale_factor=0.002" in options


async def prepared_statements(engine: Any) -> list[Any]:
    """The prepared statements of every connection the engine's pool holds, with how often each
    was planned generically and for its values (a connection's own view: all taken at once)."""
    async with AsyncExitStack() as stack:
        idle = engine.sync_engine.pool.checkedin()
        drivers = [await stack.enter_async_context(asyncpg_connection(engine)) for _ in range(idle)]
        query = "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
        return [row for driver in drivers for row in await driver.fetch(query)]


async def test_the_hot_paths_keep_one_plan_a_statement_and_the_rest_plan_for_their_values(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """PostgreSQL plans a statement with array parameters (a batch's rows, a session's save)
    again on every execution, unless told to keep a generic plan: the connections of the
    statements sent to the driver keep one, planning cost more than those statements. What
    reads a range, a growing aggregate or a skewed column is planned for its values: the
    reaper's pick (a generic plan took it from 18 to 264 ms on a backlog), a settlement's
    balances, and everything SQLAlchemy sends."""
    on_postgresql(storage_url)
    sessions = [await stored_session(storage, tenant) for _ in range(3)]
    for n in range(1, 9):
        await storage.events.append(
            tenant.id, batch(*(event(s, n) for s in sessions[: 1 + n % 2])), NOW, OPEN
        )
    await storage.sessions.close(tenant.id, sessions[0].id, Exit(at=at(1)), frozenset(), NOW, OPEN)
    for _ in range(2):
        staleness = Staleness(default=NOW + timedelta(minutes=1))
        await storage.sessions.time_out_idle(tenant.id, staleness, 1, frozenset(), NOW, OPEN)
        rated = await stored_session(storage, tenant, kind="counseling", subject_id="ann")
        pending, _ = await storage.sessions.close(
            tenant.id, rated.id, Exit(at=at(1)), frozenset({"counseling"}), NOW, OPEN
        )
        assert await storage.ledger.settle_many(tenant.id, [Priced(pending, 2)], at(2))

    plans = await prepared_statements(storage.driver_engine) + await prepared_statements(
        storage.engine
    )
    async with storage.engine.connect() as conn:
        sqlalchemy_plans = await conn.scalar(text("SHOW plan_cache_mode"))

    def planned(start: str) -> tuple[int, int]:
        """(generic, custom) plans of the statement that starts so, on every connection."""
        found = [p for p in plans if p["statement"].startswith(start)]
        assert found, start
        return sum(p["generic_plans"] for p in found), sum(p["custom_plans"] for p in found)

    # A batch written unless its sessions changed (event_batches.append_unless_changed); the
    # exit's write as a group's (statement_groups), even alone.
    batch_insert = planned("WITH v AS (SELECT $1::varchar AS tenant_id")
    exit_save = planned("WITH v AS (SELECT * FROM")
    assert batch_insert[0] >= 1 and exit_save[0] >= 1
    assert batch_insert[1] == exit_save[1] == 0
    assert planned("WITH picked AS") == (0, 2)
    assert planned("SELECT k.subject_id") == (0, 2)  # a settlement's balances
    assert sqlalchemy_plans == "auto"


async def test_sqlite_reports_and_rollup_reads_wait_for_no_writer(tmp_path: Path) -> None:
    """Another process holds SQLite's write lock (a long transaction): a report and a rollup
    run's reads answer at once. In transactions that took the write lock they waited for it
    (busy_timeout, 30 s), and held it while they computed, every writer waiting for them."""
    storage = SqlAlchemyStorage(f"sqlite:///{tmp_path}/reads.db")
    try:
        await storage.migrate()
        tenant = await add_tenant(storage)
        await stored_session(storage, tenant)
        writer = sqlite3.connect(
            tmp_path / "reads.db", isolation_level=None, check_same_thread=False
        )
        writer.execute("BEGIN IMMEDIATE")
        # Let go after HELD_SECONDS whatever happens, so that readers that wait end too.
        letting_go = threading.Timer(HELD_SECONDS, writer.execute, ["ROLLBACK"])
        letting_go.start()
        try:
            window = Window(at(-60), at(60))
            asked = time.monotonic()
            answered = await asyncio.gather(
                storage.reports.watch_time(tenant.id, "room-1", window),
                storage.reports.active(tenant.id, None),
                storage.usage_source.activity(tenant.id, at(-60), at(60)),
                storage.usage_source.earliest_active_start(tenant.id),
                storage.rollups.find(tenant.id, Period.HOUR, window),
            )
            waited = time.monotonic() - asked
        finally:
            letting_go.join()
            writer.close()
    finally:
        await storage.close()

    assert waited < HELD_SECONDS / 2, waited
    assert answered[1] == 1  # the stored session, active


HELD_SECONDS = 4


async def test_sqlite_readers_at_once_reuse_the_pools_connections(tmp_path: Path) -> None:
    """Twenty rounds of fifteen reads at once (a worker under load) open fifteen connections
    and keep them: none is opened again, as connections over a smaller pool's size were, each
    an aiosqlite thread started and a connection made (engine.SQLITE_CONNECTIONS)."""
    storage = SqlAlchemyStorage(f"sqlite:///{tmp_path}/readers.db")
    opened = 0

    def count(*_: Any) -> None:
        nonlocal opened
        opened += 1

    try:
        await storage.migrate()
        tenant = await add_tenant(storage, "acme")
        sqlalchemy_event.listen(storage.engine.sync_engine, "connect", count)
        for _ in range(20):
            await asyncio.gather(*(storage.tenants.get(tenant.id) for _ in range(15)))
    finally:
        await storage.close()

    assert 0 < opened <= 15


async def test_a_servers_sqlite_storage_opens_only_the_file_that_is_there(tmp_path: Path) -> None:
    """A server's storage (serving): its file moved away (a backup restored, a clean-up script)
    is a StorageError, for its health too, and no empty database made in its place; back, it is
    served again."""
    database = tmp_path / "served db%.db"  # a name a URI filename must escape
    url = f"sqlite:///{database}"
    migrated = SqlAlchemyStorage(url)
    await migrated.migrate()
    await migrated.close()
    served, started_meanwhile = (SqlAlchemyStorage(url, serving=True) for _ in range(2))
    try:
        await served.health.ping()  # a connection kept in the pool, on the file
        _move_files_of(database, tmp_path, tmp_path / "aside")
        with pytest.raises(StorageError):
            await served.health.ping()  # SELECT 1 on the kept connection reads no file
        with pytest.raises(StorageError):
            await started_meanwhile.tenants.get_by_name("acme")  # its first connection
        assert not database.exists()
        _move_files_of(database, tmp_path / "aside", tmp_path)
        for storage in (served, started_meanwhile):
            await storage.health.ping()
            assert await storage.tenants.get_by_name("acme") is None
    finally:
        await served.close()
        await started_meanwhile.close()


def _move_files_of(database: Path, where: Path, to: Path) -> None:
    """The database's file, -wal and -shm moved from `where` to `to`."""
    to.mkdir(exist_ok=True)
    for file in where.glob(f"{database.name}*"):
        file.rename(to / file.name)


async def test_a_sqlite_connect_that_failed_returns_once_its_thread_has_ended(
    tmp_path: Path,
) -> None:
    """aiosqlite stops the thread of a connect that failed without waiting for it. Had the
    caller's event loop ended meanwhile (a command's asyncio.run, a test's), the thread's answer
    found it closed: an "Event loop is closed" traceback on stderr. The failure reaches the
    caller once that thread has ended."""
    before = set(threading.enumerate())
    absent = SqlAlchemyStorage(f"sqlite:///{tmp_path}/absent.db", serving=True)
    try:
        with pytest.raises(StorageError):
            await absent.health.ping()
        left = [
            thread.name
            for thread in set(threading.enumerate()) - before
            if "_connection_worker_thread" in thread.name  # aiosqlite's
        ]
    finally:
        await absent.close()
    assert left == []
