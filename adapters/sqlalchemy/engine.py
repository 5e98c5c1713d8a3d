"""Engines for the two SQL families, and the dialect-specific INSERT they need."""

import asyncio
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aiosqlite
import asyncpg
import msgspec
from sqlalchemy import Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError, MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolProxiedConnection, QueuePool
from sqlalchemy.util import asbool, greenlet_spawn

from adapters.ledger_holds import SETTLEMENT_WAIT_SECONDS
from domain.calendar import Calendar

# PostgreSQL connections a process keeps at most (PostgreSQL allows 100 by default), unless told.
DEFAULT_CONNECTIONS = 30
# SQLite connections a process keeps (each with its thread: aiosqlite's): its readers' at once.
SQLITE_CONNECTIONS = 15

DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def json_text(value: Any) -> str | None:
    """A JSON column's value as the drivers take it when written to directly (the hot paths:
    asyncpg's codec from the engine, sqlite3): its text, None for SQL NULL."""
    return None if value is None else msgspec.json.encode(value).decode()


@asynccontextmanager
async def pooled_connection(engine: AsyncEngine) -> AsyncIterator[PoolProxiedConnection]:
    """A connection of the engine's pool, for the hot paths that talk to its driver themselves
    (asyncpg_statements, sqlite_statements): without the Connection SQLAlchemy wraps around it in
    `engine.connect()`, a checkout and return cost a third of the CPU."""
    pool = engine.sync_engine.pool
    try:
        # A connection idle in the pool is taken without an await, so without the greenlet
        # SQLAlchemy starts for one (two thirds of a checkout's CPU). A checkout that must await
        # (for a new connection, or for one to come back) fails before anything has changed, and
        # is made the usual way.
        connection = engine.sync_engine.raw_connection()
    except MissingGreenlet as error:
        # Its traceback holds SQLAlchemy's frames, in a cycle with the error, and those hold the
        # thread's greenlet: left to the collector, they were collected on another thread once
        # this one had ended (a test client's), and greenlet crashed the process (a segfault).
        error.__traceback__ = None
        connection = await engine.raw_connection()
    try:
        yield connection
    finally:
        if isinstance(pool, QueuePool) and pool.overflow() <= 0:
            # The pool holds no more connections than it has room for: this one goes back
            # without anything being closed, so without an await, and the greenlet SQLAlchemy
            # needs for one (a third of a checkout's CPU) is not started.
            connection.close()
        else:
            # Returning it may close it (one over the pool's size): that awaits the driver,
            # which SQLAlchemy does only inside its greenlet.
            await greenlet_spawn(connection.close)


def async_url(url: str) -> str:
    """`sqlite:///x.db` / `postgresql://…` as users write them, with the async driver named."""
    scheme, rest = url.split(":", 1)
    return DRIVERS.get(scheme.lower(), scheme) + ":" + rest


def pool_sizes(connections: int) -> tuple[int, int]:
    """A process's PostgreSQL connections (at least 3) shared between its two engines: two
    thirds to the hot paths' statements sent to the driver (create_driver_engine), the rest to
    everything SQLAlchemy sends, at least 2 (an erasure holds its subject's ledger on one while
    its work goes on another: Erasure.with_ledgers_held)."""
    driver = max(1, min(connections * 2 // 3, connections - 2))
    return driver, connections - driver


def create_engine(
    url: str,
    pool_size: int,
    generic_plans: bool = False,
    wait_seconds: float | None = None,
    serving: bool = False,
) -> AsyncEngine:
    """Its errors name the statement that failed, never the values bound to it: those come from
    requests (subject ids, attributes), and the errors of a request are logged. On PostgreSQL
    it keeps up to `pool_size` connections, each given up after `wait_seconds` without an
    answer to its connect (None: asyncpg's 60 s).

    `serving`: the engine of a server, whose database is there and migrated before it starts.
    SQLite then opens only the file it finds: one moved away (a backup restored, a clean-up
    script) is an error until it is back, where SQLite would make an empty database in its place
    and keep its connections on that one for good. PostgreSQL gives up a statement left without
    an answer for `wait_seconds` (LONGEST_LOCK_WAIT_SECONDS at least): a server that froze (or
    a network that drops its packets) keeps its connections open, and a request on one would
    wait for ever. A command's statements keep no bound: a migration or a backfill may take
    minutes."""
    full = make_url(async_url(url))
    # JSON columns decoded by msgspec: the same values as json.loads, in a third of the time
    # (reports read thousands of small JSON objects).
    common: dict[str, Any] = {"hide_parameters": True, "json_deserializer": msgspec.json.decode}
    if full.get_backend_name() == "sqlite":
        # No rollback when a connection goes back to the pool: every transaction has ended by
        # then (SQLAlchemy's end with their Connection; the direct paths' with their step), and
        # with aiosqlite the rollback was a hop to SQLite's thread per checkout, as dear as a step.
        # A fixed pool, as many connections as SQLAlchemy's default allows at once (5 kept, 10
        # more opened when needed): under load those 10 were opened and closed again and again,
        # each a thread started and a connection made, a tenth of the worker's time (signed
        # webhooks, 16 clients, 1 worker: 820 a second against 915 kept, 851 against 967 with
        # 12 kept, runs interleaved).
        if not _in_memory(full):
            common.update(pool_size=SQLITE_CONNECTIONS, max_overflow=0)
            if serving:
                full = _existing_file_only(full)
        engine = create_async_engine(
            full,
            pool_reset_on_return=None,
            connect_args={"async_creator_fn": _SqliteConnecting},
            **common,
        )
        _serialise_sqlite_writers(engine)
        if serving and (path := sqlite_file(url)) is not None:
            _dropped_when_its_file_is_replaced(engine, path)
        return engine
    # A fixed pool: under load requests queue for a connection instead of opening and closing
    # overflow connections, each of which would cost a full PostgreSQL connect. No JIT: it
    # compiles any query the planner guesses costly (a correlated subquery is enough) and took
    # 40 ms of a 100 ms report; our queries are indexed and short.
    settings = {"jit": "off"}
    if generic_plans:
        settings["plan_cache_mode"] = "force_generic_plan"
    # The dialect calls `async_creator_fn` with the arguments it made of the URL and these.
    connecting: dict[str, Any] = {"server_settings": settings, "async_creator_fn": _Connecting}
    if wait_seconds is not None:
        connecting["timeout"] = wait_seconds
        if serving and "command_timeout" not in full.query:  # the URL's, if it says
            # asyncpg's TimeoutError is an OSError: a StorageError, so a 503 to a request.
            connecting["command_timeout"] = max(wait_seconds, LONGEST_LOCK_WAIT_SECONDS)
    engine = create_async_engine(
        full,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=30,
        connect_args=connecting,
        **common,
    )
    event.listen(engine.sync_engine, "handle_error", _dropped_when_given_up)
    return engine


def given_up(error: BaseException) -> bool:
    """Whether asyncpg gave up a statement (its command_timeout): it then cancels it in the
    background, and terminates the connection when the server does not answer that either (one
    that froze), by when the connection may be back in the pool: the next request on it would
    fail, "connection is closed", once the server is back. So such a connection is dropped."""
    return isinstance(error, TimeoutError)


def _dropped_when_given_up(context: Any) -> None:
    """SQLAlchemy's paths: a connection whose statement was given up is dropped (given_up), as
    a disconnected one is, and without the rollback that would wait for the server again."""
    if given_up(context.original_exception):
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False  # the others may well be fine


# A server's statements are given up after the storage wait, but not before PostgreSQL has given
# up a settlement's wait for a ledger an erasure holds (migration 0027's lock_timeout), so that
# the settlement still leaves the session to the reaper (the exit is answered) whatever the
# wait. An erasure's own wait for a ledger, longer, is timed on its own (SqlErasure).
LONGEST_LOCK_WAIT_SECONDS = SETTLEMENT_WAIT_SECONDS + 1.0


class _Connecting:
    """asyncpg.connect(*args, **kwargs), begun only when awaited. SQLAlchemy makes the awaitable
    of a new connection before it finds that it cannot await it (a checkout outside its
    greenlet: pooled_connection), and a coroutine made and never awaited is a RuntimeWarning."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args, self._kwargs = args, kwargs

    def __await__(self) -> Generator[Any, None, Any]:
        steps: Generator[Any, None, Any] = asyncpg.connect(*self._args, **self._kwargs).__await__()
        return steps


class _SqliteConnecting:
    """aiosqlite.connect(*args, **kwargs), its thread a daemon as SQLAlchemy's dialect makes it
    (a process ends without closing its pool), save that a connect that fails raises only once
    that thread has ended. aiosqlite (0.22, pinned) then queues the thread's stop without
    waiting for it, and the thread's answer could find the caller's event loop closed (a
    command's asyncio.run, ended by the error): an "Event loop is closed" traceback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connection = aiosqlite.connect(*args, **kwargs)
        self._connection._thread.daemon = True

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connected().__await__()

    async def _connected(self) -> aiosqlite.Connection:
        try:
            return await self._connection
        except Exception:
            # Joined off the loop, which takes the thread's answer to the stop meanwhile.
            await asyncio.to_thread(self._connection._thread.join)
            raise


def create_driver_engine(
    url: str,
    engine: AsyncEngine,
    pool_size: int,
    wait_seconds: float | None = None,
    serving: bool = False,
) -> AsyncEngine:
    """The engine whose connections the hot paths' statements go to the driver on
    (asyncpg_statements); on SQLite `engine` itself, whose writers take turns on one connection
    (sqlite_statements).

    On PostgreSQL its connections keep one generic plan per statement. By default PostgreSQL
    plans again, on every execution, a statement whose parameters are arrays (`unnest`,
    `= ANY`: the hot paths' rows and sessions), since a plan made for the values sees their
    length and always looks cheaper than a generic one that cannot. That planning cost more than
    the statements did (an exit's update: 361 µs of planning, 201 of execution; a batch's lock
    and insert: 553 µs of planning, a sixth of the database's work). Those statements find rows
    by key, so one plan serves every value. What SQLAlchemy sends stays on `engine`, planned as
    PostgreSQL chooses: its filters on skewed columns (the sessions pending a charge among a
    million charged) need plans made for their values, and a generic plan read a tenant's every
    session to find none (15.7 ms against 0.07 on 20,000). So do two steps sent to the driver,
    which run on `engine` for it: the reaper's time-out and a settlement."""
    if engine.dialect.name == "sqlite":
        return engine
    return create_engine(url, pool_size, True, wait_seconds, serving)


def _in_memory(url: URL) -> bool:
    """An in-memory SQLite database, told apart as SQLAlchemy does: it keeps it on one
    connection (StaticPool), which has no size to set."""
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def sqlite_file(url: str | URL) -> Path | None:
    """The file of a SQLite database's URL; None for another database, or one in memory."""
    url = make_url(url)
    if url.get_backend_name() != "sqlite" or _in_memory(url):
        return None
    name = url.database or ""
    if asbool(url.query.get("uri", False)) and name.startswith("file:"):  # a URI filename
        name = unquote(urlsplit(name).path)
    return None if name in ("", ":memory:") else Path(name)


def _existing_file_only(url: URL) -> URL:
    """A SQLite file's URL that opens it only if it is there (a URI filename, mode=rw)."""
    if asbool(url.query.get("uri", False)):
        return url if "mode" in url.query else url.update_query_dict({"mode": "rw"})
    path = str(Path(url.database or "").absolute())
    return url.set(database=f"file:{quote(path)}", query={"uri": "true", "mode": "rw"})


# Where a server's SQLite connection keeps the file it opened: its path and what stood there.
_OPENED = "sessionmeter_opened_file"


def _file_at(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def replaced(info: dict[Any, Any]) -> bool:
    """Whether the file a server's SQLite connection (its pool record's `info`) opened is no
    longer the one at its path: moved away, or another put in its place (a backup restored). In
    WAL mode SQLite goes on reading and writing the file it opened, so its writes would be
    answered and land where nobody reads them (a deleted file: lost)."""
    opened = info.get(_OPENED)
    return opened is not None and _file_at(opened[0]) != opened[1]


def _dropped_when_its_file_is_replaced(engine: AsyncEngine, path: Path) -> None:
    """A connection whose file was replaced is dropped when it is taken from the pool, and
    another opened on the file there is now (none there: a StorageError, a 503). A stat per
    checkout; the writers' connection, kept, is checked per step (sqlite_statements)."""

    @event.listens_for(engine.sync_engine, "connect")
    def opened(_: Any, record: Any) -> None:
        record.info[_OPENED] = (path, _file_at(path))

    @event.listens_for(engine.sync_engine, "checkout")
    def checked_out(_: Any, record: Any, __: Any) -> None:
        if replaced(record.info):
            raise DisconnectionError("the SQLite database file was moved or replaced")


def _serialise_sqlite_writers(engine: AsyncEngine) -> None:
    """SQLite allows one writer. Every transaction takes the write lock when it begins
    (BEGIN IMMEDIATE), so concurrent writers queue for up to busy_timeout instead of failing
    with "database is locked" halfway through; WAL lets readers of other processes carry on.
    The storage wait does not shorten busy_timeout: a writer waiting for the lock waits for a
    database that is busy, not one that stopped answering: with 10 s, under load (the live
    scenarios beside the rest of the suite, or beside three busy cores), writers were refused
    ("database is locked") where 30 s served them."""

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver must not BEGIN on its own
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        dbapi_connection.create_function("local_date", 2, _local_date, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        reading = connection.get_execution_options().get(READING)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def _local_date(at: str | None, time_zone: str) -> str | None:
    """SQLite's local_date(at, zone): the calendar day of a stored instant (naive UTC text) in an
    IANA time zone, which SQLite's own date functions cannot reach."""
    if at is None:
        return None
    instant = datetime.fromisoformat(at).replace(tzinfo=UTC)
    return Calendar(time_zone).date_of(instant).isoformat()


# SQLite's busy handler retries a waiting writer after 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50
# and then every 100 ms: a job that takes the lock again at once would hold it whenever they look.
SQLITE_BATCH_PAUSE_SECONDS = 0.1


def batch_pause_seconds(engine: AsyncEngine) -> float:
    """Storage.batch_pause_seconds: SQLite's writers queue for one lock, and each waiting one
    retries on its own schedule; PostgreSQL's lock rows, which batch jobs and requests do not
    share."""
    return SQLITE_BATCH_PAUSE_SECONDS if engine.dialect.name == "sqlite" else 0.0


# An execution option: the transactions of this engine only read (SQLite: see `reading`).
READING = "sessionmeter_reading"


def reading(engine: AsyncEngine) -> AsyncEngine:
    """For long reads of many statements (a tenant's export), each transaction one snapshot
    that holds back no writer: on PostgreSQL REPEATABLE READ; on SQLite a deferred BEGIN,
    which under WAL reads a snapshot and holds no lock a writer waits for (BEGIN IMMEDIATE
    would keep every writer out until the reading is done)."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{READING: True})
    return engine.execution_options(isolation_level="REPEATABLE READ")


def single_statement(engine: AsyncEngine) -> AsyncEngine:
    """For reads and one-statement writes: on PostgreSQL without BEGIN and COMMIT, which are
    round trips that buy nothing there. SQLite keeps its transactions (they take the lock)."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


def reads_only(engine: AsyncEngine) -> AsyncEngine:
    """For adapters that only read (reports, the rollups' reads): sent as `single_statement`
    sends them on PostgreSQL; on SQLite in a deferred transaction (`reading`), so that a report
    or a rollup run's reads neither wait for the one write lock nor hold it, and every writer
    with it, while they compute."""
    if engine.dialect.name == "sqlite":
        return reading(engine)
    return single_statement(engine)


def insert(engine: AsyncEngine, table: Table) -> Any:
    """An INSERT that knows ON CONFLICT: both dialects have it, under their own class."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# Between the parts of a lock's key.
SEPARATOR = "\x1f"
# The lock `serialise` takes, its key (the parts joined by SEPARATOR) a parameter named in `key`.
ADVISORY_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended({key}, 0))"


async def serialise(conn: AsyncConnection, *key: str) -> None:
    """Make transactions that name the same key run one after the other (a PostgreSQL
    transaction-level advisory lock). SQLite transactions are serialised already."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text(ADVISORY_LOCK.format(key=":key")), {"key": SEPARATOR.join(key)})
