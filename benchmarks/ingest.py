"""Ingest throughput through a real server process, next to the database driver's own rate.

    .venv/bin/python benchmarks/ingest.py [--seconds 10] [--clients 32] [--workers 1]
                                          [--compare-workers]
                                          [--storage postgresql|sqlite|mongodb]

Measures, each for --seconds:
  (a) session start+exit pairs per second from --clients concurrent HTTP clients, next to the same
      two writes (INSERT the session, UPDATE it closed; a transaction each) done directly;
  (b) events per second through POST /v1/events/batch in batches of 100 from 8 clients, next to
      the same rows written directly, batch by batch, each batch counted into its session in
      the same transaction (or the same statement).
Direct writes, by storage:
  postgresql  asyncpg, on connections set up as the service's driver connections (no JIT,
              generic plans). Pairs: as many tasks as clients, and also the very statements
              the service sends for a pair, with the values it binds, a pair at a time
              (pg_service_pairs: the issue's baseline for pairs; its ratio is printed next to
              the fastest's), and as the service sends them under load, each grouped with the
              other clients' of its kind (pg_grouped_pairs: the fastest way found). Events,
              every way the driver has: an executemany of INSERT … ON CONFLICT DO NOTHING; one
              INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING; the same from
              json_to_recordset(…), the rows as one JSON document (the service's way); the
              unnest INSERT and the session's count in one statement outside a transaction (one
              round trip a batch: the fastest); COPY into a temporary table, then INSERT …
              SELECT … ON CONFLICT DO NOTHING; and plain COPY into events, which does not skip
              duplicates (a duplicate fails the batch), so it is printed for information only.
  sqlite      the sqlite3 module on the server's own file, with the server's PRAGMAs (WAL,
              synchronous=NORMAL, BEGIN IMMEDIATE): one thread writing sequentially (SQLite has
              one writer), 8 threads each with its connection, and one thread committing every
              client's writes of a kind together, as the service's writers do under load (its
              group commit) at best. Events: executemany of INSERT OR IGNORE.
  mongodb     pymongo (insert_one + update_one; insert_many + update_one) against the MongoDB
              test server (SecantusDB, in Python): its figures show relative cost only.
Every direct way is timed once, on the first service. Each HTTP figure's ratio is then against the
fastest that writes the same rows with the same guarantees (each event once, duplicates skipped),
timed again in turns with it: 4 slices of each, each round in the order of the one before
reversed, so that both see the same moods of this shared VM (its speed moves by a fifth or more
from one minute to the next). The events' direct ways count each batch into its session's
event_count and highest number, not into its meters' row nor its last sign of life, which the
service writes too: the one statement with those writes added ran about 11 % slower in turns
(2026-12-07, a review's throwaway script), so the ratio is the stricter one.
--compare-workers runs the HTTP figures with 1 and then 2 server workers, each on a fresh service
of the same storage. Both sides run on a tenant that holds a deployment's sessions already
(harness.deployed_sessions) and on analysed tables (harness.analyze), and the HTTP load comes
from harness.Connection, a client that costs a quarter of aiohttp's CPU. Last each server
worker's share of a core during the HTTP slices, and the server's peak resident memory per worker
(its largest process) and over all its processes. Client and server share this machine's cores,
as they would in a small deployment; the ratio is the figure to watch.
"""

import argparse
import asyncio
import itertools
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from statistics import mean
from typing import Any

import asyncpg
import msgspec
from harness import (
    STORAGES,
    Service,
    add_worker_flags,
    analyze,
    api_headers,
    connections,
    cores_text,
    lifecycles,
    mirrored,
    now,
    peak_rss_while,
    rss_line,
    run_for,
    run_threads,
    service,
    worker_counts,
    workers_cores,
)
from msgspec import Raw
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

# harness puts the project on the path
from adapters.sqlalchemy import asyncpg_sessions
from adapters.sqlalchemy.asyncpg_events import AsyncpgBatchWriter
from adapters.sqlalchemy.engine import create_engine
from adapters.sqlalchemy.event_batches import append_unless_changed
from adapters.sqlalchemy.grouped_sessions import GroupedSessions
from adapters.sqlalchemy.tables import sessions as sessions_table
from domain.clock import to_the_millisecond
from domain.events import Event
from domain.session import END_CHANGES, Exit, Session, SessionRequest
from domain.tenants import TenantSettings

BATCH = 100
EVENT_CLIENTS = 8
SQLITE_THREADS = EVENT_CLIENTS  # the "several threads" next to the one: one per events client
ROUNDS = 4  # slices of an HTTP figure and of its direct baselines, taken in mirrored turns
HTTP = "HTTP"
OPEN = timedelta(days=1)  # how far ahead an exit may be: any, here

EVENT_COLUMNS = ["tenant_id", "session_id", "sequence_no", "type", "at", "label", "meters"]
EventRow = tuple[str, str, int, str, Any, str, str]

PG_SESSION_INSERT = (
    "INSERT INTO sessions (tenant_id, id, kind, resource_id, subject_id, status,"
    " started_at, last_seen_at, attributes, event_count, max_sequence_no, charge_state)"
    " VALUES ($1, $2, 'webinar', 'w1', $3, 'active', $4, $4, '{}', 0, 0, 'none')"
)
PG_SESSION_CLOSE = (
    "UPDATE sessions SET status = 'completed', ended_at = $3, last_seen_at = $3,"
    " charge_state = 'not_charged' WHERE tenant_id = $1 AND id = $2 AND status = 'active'"
)
PG_SESSION_COUNT = (
    "UPDATE sessions SET event_count = event_count + $3,"
    " max_sequence_no = greatest(max_sequence_no, $4) WHERE tenant_id = $1 AND id = $2"
)
PG_EVENTS_VALUES = (
    "INSERT INTO events (tenant_id, session_id, sequence_no, type, at, label, meters)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"
)
PG_EVENTS_UNNEST = (
    "INSERT INTO events (tenant_id, session_id, sequence_no, type, at, label, meters)"
    " SELECT $1, $2, * FROM unnest($3::bigint[], $4::text[], $5::timestamptz[], $6::text[],"
    " $7::json[]) ON CONFLICT DO NOTHING"
)
# The rows and their count into the session in one statement, outside a transaction (a
# statement is atomic on its own): one round trip a batch where BEGIN, INSERT, UPDATE and COMMIT
# take four, and only the rows stored are counted.
PG_EVENTS_UNNEST_COUNTED = (
    "WITH stored AS (INSERT INTO events (tenant_id, session_id, sequence_no, type, at, label,"
    " meters) SELECT $1, $2, * FROM unnest($3::bigint[], $4::text[], $5::timestamptz[],"
    " $6::text[], $7::json[]) ON CONFLICT DO NOTHING RETURNING sequence_no)"
    " UPDATE sessions SET event_count = event_count + (SELECT count(*) FROM stored),"
    " max_sequence_no = greatest(max_sequence_no, (SELECT max(sequence_no) FROM stored))"
    " WHERE tenant_id = $1 AND id = $2"
)
PG_EVENTS_JSON = (
    "INSERT INTO events (tenant_id, session_id, sequence_no, type, at, label, meters)"
    " SELECT $1, $2, r.* FROM json_to_recordset($3::json)"
    " AS r(sequence_no bigint, type text, at timestamptz, label text, meters json)"
    " ON CONFLICT DO NOTHING"
)
# Emptied at each commit, so every batch finds it empty.
PG_EVENTS_IN = "CREATE TEMPORARY TABLE events_in (LIKE events) ON COMMIT DELETE ROWS"
PG_EVENTS_FROM_TEMPORARY = (
    "INSERT INTO events (tenant_id, session_id, sequence_no, type, at, label, meters)"
    " SELECT tenant_id, session_id, sequence_no, type, at, label, meters FROM events_in"
    " ON CONFLICT DO NOTHING"
)

SQLITE_SESSION_INSERT = (
    "INSERT INTO sessions (tenant_id, id, kind, resource_id, subject_id, status,"
    " started_at, last_seen_at, attributes, event_count, max_sequence_no, charge_state)"
    " VALUES (?1, ?2, 'webinar', 'w1', ?3, 'active', ?4, ?4, '{}', 0, 0, 'none')"
)
SQLITE_SESSION_CLOSE = (
    "UPDATE sessions SET status = 'completed', ended_at = ?3, last_seen_at = ?3,"
    " charge_state = 'not_charged' WHERE tenant_id = ?1 AND id = ?2 AND status = 'active'"
)
SQLITE_SESSION_COUNT = (
    "UPDATE sessions SET event_count = event_count + ?3,"
    " max_sequence_no = max(max_sequence_no, ?4) WHERE tenant_id = ?1 AND id = ?2"
)
SQLITE_EVENTS = (
    "INSERT OR IGNORE INTO events (tenant_id, session_id, sequence_no, type, at, label, meters)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class Way:
    """A direct way of writing, timed for some seconds by `rate`."""

    name: str
    rate: Callable[[float], Awaitable[float]]
    # Writes each event once and skips duplicates, as the service does: only such a way is a
    # fair baseline for the service's ratio.
    skips_duplicates: bool = True
    # Sends the very statements the service sends (the baseline for pairs): the ratio
    # against it is printed too, next to the one against the fastest way, as "of `compared_as`".
    service_statements: bool = False
    compared_as: str = "the same statements"


@dataclass(frozen=True)
class Ways:
    pairs: list[Way]
    events: list[Way]


class Numbers:
    """The next sequence numbers of each session's batches. One for every way of writing into
    the same sessions, HTTP and direct: each batch's numbers are above every earlier batch's of
    its session, as a client's are. Never reused: plain COPY fails on a duplicate, and the
    others would skip it. And never below what a session holds: the service takes such a batch
    as a late one, whose events may be stored already, and writes it in a transaction that
    locks the session (event_batches.append_batch), the usual batch's two statements costing
    it four. (Until 2026-12-07 the direct ways numbered from 10,000,001 and HTTP from 1 on the
    same sessions, so every HTTP batch after the first direct one was written that way.)"""

    def __init__(self, sessions: int) -> None:
        self._last = [0] * sessions

    def take(self, i: int) -> range:
        first = self._last[i] + 1
        self._last[i] += BATCH
        return range(first, first + BATCH)


def event_rows(tenant_id: str, session_id: str, numbers: range, at: Any) -> list[EventRow]:
    """The rows the HTTP clients' events make (`at` as the driver takes an instant)."""
    return [(tenant_id, session_id, n, "tap", at, "green", '{"taps": 1}') for n in numbers]


# HTTP


async def open_sessions(base: str, key: str, count: int) -> list[str]:
    async with connections(base, 1, api_headers(key)) as (http,):
        ids = []
        for i in range(count):
            body = {"kind": "kiosk", "resource_id": "booth", "subject_id": f"k{i}"}
            status, started = await http.request("POST", "/v1/sessions", msgspec.json.encode(body))
            assert status == 201, started
            ids.append(msgspec.json.decode(started)["id"])
        return ids


async def http_events(
    base: str, key: str, sessions: list[str], numbers: Numbers, seconds: float
) -> float:
    async with connections(base, len(sessions), api_headers(key)) as http:

        async def batch(i: int) -> int:
            taken = numbers.take(i)
            at = now()  # one instant a batch, as the direct writes have
            events = [
                {
                    "session_id": sessions[i],
                    "sequence_no": n,
                    "type": "tap",
                    "at": at,
                    "label": "green",
                    "meters": {"taps": 1},
                }
                for n in taken
            ]
            body = msgspec.json.encode({"events": events})
            status, answer = await http[i].request("POST", "/v1/events/batch", body)
            result = msgspec.json.decode(answer)
            assert status == 200 and result["inserted"] == BATCH, (status, result)
            return BATCH

        return await run_for(seconds, len(sessions), batch)


async def in_turns(
    http: Callable[[float], Awaitable[float]], directs: list[Way], seconds: float, pid: int
) -> tuple[float, list[float], list[float]]:
    """An HTTP rate and the direct ones it is compared with, each the mean of ROUNDS slices
    taken in turn, each round in the order of the one before reversed (this VM's speed moves by
    a fifth or more from one minute to the next: rates taken a minute apart made ratios of 34 %
    and 62 % of the same code); and each server worker's share of a core during the HTTP
    slices."""
    ways = {HTTP: http, **{str(n): way.rate for n, way in enumerate(directs)}}
    rates: dict[str, list[float]] = {name: [] for name in ways}
    shares = []
    for _, name in mirrored(list(ways), ROUNDS):
        if name != HTTP:
            rates[name].append(await ways[name](seconds / ROUNDS))
            continue
        with workers_cores(pid) as cores:
            rates[HTTP].append(await http(seconds / ROUNDS))
        shares.append(cores)
    return (
        mean(rates[HTTP]),
        [mean(rates[str(n)]) for n in range(len(directs))],
        [mean(worker) for worker in zip(*shares, strict=True)],
    )


async def figures(
    args: argparse.Namespace,
    svc: Service,
    key: str,
    sessions: list[str],
    numbers: Numbers,
    compared: dict[str, list[Way]],
) -> dict[str, Any]:
    """Pairs, then events, per second through HTTP, in turns with the direct ways `compared`
    with each (baselines), each on tables analysed just before (the pairs add thousands of
    sessions: unanalysed, they cost the events' statements 3-10 times as much in the
    database)."""
    pid = svc.process.pid

    def pairs(seconds: float) -> Awaitable[float]:
        return lifecycles(svc.base, key, seconds, args.clients, "webinar")

    def events(seconds: float) -> Awaitable[float]:
        return http_events(svc.base, key, sessions, numbers, seconds)

    found: dict[str, Any] = {}
    for kind, http in (("pairs", pairs), ("events", events)):
        await analyze(svc.storage_url)
        found[kind], found[f"{kind} direct"], cores = await in_turns(
            http, compared[kind], args.seconds, pid
        )
        found[f"{kind} cores"] = cores_text(cores)
    return found


async def survey(args: argparse.Namespace, ways: Ways) -> dict[str, list[tuple[Way, float]]]:
    """Every direct way of writing, timed once: which is fastest, and by how much."""
    return {
        kind: [(way, await way.rate(args.seconds)) for way in getattr(ways, kind)]
        for kind in ("pairs", "events")
    }


# PostgreSQL, asyncpg

# As the service's connections for the statements it sends to asyncpg are set up
# (adapters.sqlalchemy.engine.create_driver_engine): without them, a statement with array
# parameters is planned again at each execution (the direct pairs of the service's statements:
# 2,007 a second against … with them).
DRIVER_SETTINGS = {"jit": "off", "plan_cache_mode": "force_generic_plan"}

Write = Callable[[asyncpg.Connection, list[EventRow]], Awaitable[Any]]
Setup = Callable[[asyncpg.Connection], Awaitable[Any]]


@asynccontextmanager
async def pg_connections(
    url: str, count: int, setup: Setup | None = None
) -> AsyncIterator[list[asyncpg.Connection]]:
    """One connection a client, each set up as the service's driver connections are. Not a
    pool: asyncpg's pool resets a connection as it goes back (RESET ALL, CLOSE ALL, … in one
    more round trip a unit, which the service's pool does not send), and a client that keeps
    its own connection does no bookkeeping at all: the fastest way a client can write."""
    opened = await asyncio.gather(
        *(asyncpg.connect(url, server_settings=DRIVER_SETTINGS) for _ in range(count))
    )
    try:
        if setup is not None:
            await asyncio.gather(*(setup(conn) for conn in opened))
        yield list(opened)
    finally:
        await asyncio.gather(*(conn.close() for conn in opened))


async def pg_pairs(url: str, tenant_id: str, seconds: float, clients: int) -> float:
    async with pg_connections(url, clients) as connections:

        async def pair(i: int) -> int:
            conn, session_id = connections[i], str(uuid.uuid4())
            await conn.execute(PG_SESSION_INSERT, tenant_id, session_id, f"u{i}", datetime.now(UTC))
            await conn.execute(PG_SESSION_CLOSE, tenant_id, session_id, datetime.now(UTC))
            return 1

        return await run_for(seconds, clients, pair)


async def pg_service_pairs(url: str, tenant_id: str, seconds: float, clients: int) -> float:
    """The statements the service sends for a pair, with the values it binds, sent directly:
    the start's INSERT … ON CONFLICT DO NOTHING … RETURNING the row's version, then the exit's
    UPDATE guarded by that version (adapters.sqlalchemy.sessions, `_unless_changed`: the exit
    starts from the session as the start remembered it; until 2026-12-07 17:30 it read the
    session first, and so did this baseline). No transaction, as the service's. The UPDATE is
    the one-row statement of that guard, which the service no longer sends: alone, an exit's
    write goes as a group of one (grouped_sessions `_alone`), a statement over arrays that ran
    slower sent a pair at a time (2026-12-07, one run: 1,096 pairs a second in the survey and
    464 in turns with HTTP, where this one ran at 1,142-1,452 and 1,027-1,549 in the three runs
    before), so this baseline is the stricter one."""
    exit_statement = asyncpg_sessions.update_unless_changed(END_CHANGES, usage=False)
    # A new session's row, in the INSERT's column order, but for its id, subject and instants.
    new_row = dict.fromkeys(column.key for column in sessions_table.c) | {
        "tenant_id": tenant_id,
        "kind": "webinar",
        "resource_id": "r1",
        "status": "active",
        "attributes": "{}",
        "event_count": 0,
        "max_sequence_no": 0,
        "charge_state": "none",
        "charge_revision": 0,
        "deleted_events": "[]",
    }
    async with pg_connections(url, clients) as connections:

        async def pair(i: int) -> int:
            conn, session_id, started = connections[i], str(uuid.uuid4()), datetime.now(UTC)
            row = new_row | {
                "id": session_id,
                "subject_id": f"u{i}",
                "started_at": started,
                "last_seen_at": started,
            }
            version = await conn.fetchval(asyncpg_sessions.INSERT, *row.values())
            ended = datetime.now(UTC)
            end = row | {
                "status": "completed",
                "ended_at": ended,
                "last_seen_at": ended,
                "charge_state": "not_charged",
            }
            changes = [end[c] for c in END_CHANGES]
            await conn.fetchval(
                exit_statement,
                tenant_id,
                session_id,
                *changes,
                version,
                0,
                Decimal(0),
            )
            return 1

        return await run_for(seconds, clients, pair)


async def pg_grouped_pairs(url: str, tenant_id: str, seconds: float, clients: int) -> float:
    """The statements the service sends for pairs under load: each grouped with the other
    clients' of its kind (adapters.sqlalchemy.grouped_sessions, on an engine set up as the
    service's driver engine), from as many tasks as clients, the exit decided by the domain as
    the service decides it, on the session as the start stored it (as the service remembers
    it). No transaction, as the service's."""
    engine = create_engine(url, pool_size=clients, generic_plans=True)
    grouped = GroupedSessions(engine)
    save = grouped.save(END_CHANGES)

    async def pair(i: int) -> int:
        started = datetime.now(UTC)
        request = SessionRequest("webinar", "r1", f"u{i}", started_at=started)
        session = Session.start(tenant_id, str(uuid.uuid4()), request, started)
        version = await grouped.insert(session)
        assert version is not None
        ended = datetime.now(UTC)
        assert session.close(Exit(at=ended), frozenset(), ended, OPEN).changed
        assert await save((session, version))
        return 1

    try:
        return await run_for(seconds, clients, pair)
    finally:
        await engine.dispose()


async def pg_events(
    url: str,
    tenant_id: str,
    sessions: list[str],
    numbers: Numbers,
    seconds: float,
    write: Write,
    setup: Setup | None = None,
    counts: bool = False,
) -> float:
    """Batches written by `write`, each in a transaction with its session's UPDATE, unless
    `write` counts them itself. Connections of their own, so what `setup` leaves on one cannot
    weigh on another way of writing."""
    size = len(sessions)
    async with pg_connections(url, size, setup) as connections:

        async def batch(i: int) -> int:
            conn, taken = connections[i], numbers.take(i)
            rows = event_rows(tenant_id, sessions[i], taken, datetime.now(UTC))
            if counts:
                await write(conn, rows)
                return BATCH
            async with conn.transaction():
                await write(conn, rows)
                await conn.execute(PG_SESSION_COUNT, tenant_id, sessions[i], BATCH, taken[-1])
            return BATCH

        return await run_for(seconds, size, batch)


async def json_codecs(conn: asyncpg.Connection) -> None:
    """JSON read as the service's connections read it (SQLAlchemy's dialect, with msgspec)."""
    await conn.set_type_codec(
        "json",
        encoder=str.encode,
        decoder=msgspec.json.decode,
        schema="pg_catalog",
        format="binary",
    )


async def pg_service_batches(
    url: str, tenant_id: str, sessions: list[str], numbers: Numbers, seconds: float
) -> float:
    """The statements the service sends for a batch, with the values it binds, sent directly:
    the read of the batch's sessions with their usage, then the insert that counts the events
    into them unless they changed (adapters.sqlalchemy.event_batches.append_unless_changed on
    the service's own asyncpg writer; its domain steps make the values, on this side)."""
    window = TenantSettings().late_data_window
    async with pg_connections(url, len(sessions), json_codecs) as connections:

        async def batch(i: int) -> int:
            conn, taken, at = connections[i], numbers.take(i), datetime.now(UTC)
            events = [
                (index, Event(sessions[i], n, "tap", at, label="green", meters={"taps": 1}))
                for index, n in enumerate(taken)
            ]
            writer = AsyncpgBatchWriter(conn, tenant_id)
            outcome = await append_unless_changed(writer, events, datetime.now(UTC), window, None)
            assert outcome is not None and outcome.inserted == BATCH, outcome
            return BATCH

        return await run_for(seconds, len(sessions), batch)


async def executemany(conn: asyncpg.Connection, rows: list[EventRow]) -> None:
    await conn.executemany(PG_EVENTS_VALUES, rows)


async def unnest(conn: asyncpg.Connection, rows: list[EventRow]) -> None:
    # One statement, one round trip: the batch as an array a column.
    tenant_ids, session_ids, *columns = zip(*rows, strict=True)
    await conn.execute(PG_EVENTS_UNNEST, tenant_ids[0], session_ids[0], *columns)


async def unnest_counted(conn: asyncpg.Connection, rows: list[EventRow]) -> None:
    tenant_ids, session_ids, *columns = zip(*rows, strict=True)
    await conn.execute(PG_EVENTS_UNNEST_COUNTED, tenant_ids[0], session_ids[0], *columns)


async def json_recordset(conn: asyncpg.Connection, rows: list[EventRow]) -> None:
    # One statement, one parameter: the batch as one JSON document, encoded at once.
    document = [
        {"sequence_no": n, "type": kind, "at": at, "label": label, "meters": Raw(meters)}
        for _, _, n, kind, at, label, meters in rows
    ]
    await conn.execute(
        PG_EVENTS_JSON, rows[0][0], rows[0][1], msgspec.json.encode(document).decode()
    )


async def create_events_in(conn: asyncpg.Connection) -> None:
    await conn.execute(PG_EVENTS_IN)


async def copy_then_insert(conn: asyncpg.Connection, rows: list[EventRow]) -> None:
    await conn.copy_records_to_table("events_in", records=rows, columns=EVENT_COLUMNS)
    await conn.execute(PG_EVENTS_FROM_TEMPORARY)


async def copy(conn: asyncpg.Connection, rows: list[EventRow]) -> None:
    await conn.copy_records_to_table("events", records=rows, columns=EVENT_COLUMNS)


def pg_ways(
    args: argparse.Namespace, url: str, tenant_id: str, sessions: list[str], numbers: Numbers
) -> Ways:

    def events(
        write: Write, setup: Setup | None = None, counts: bool = False
    ) -> Callable[[float], Awaitable[float]]:
        return lambda seconds: pg_events(
            url, tenant_id, sessions, numbers, seconds, write, setup, counts
        )

    return Ways(
        pairs=[
            Way(
                "asyncpg INSERT, then UPDATE (autocommit)",
                lambda seconds: pg_pairs(url, tenant_id, seconds, args.clients),
            ),
            Way(
                "asyncpg, the service's statements a pair at a time: INSERT, guarded UPDATE",
                lambda seconds: pg_service_pairs(url, tenant_id, seconds, args.clients),
                service_statements=True,
                compared_as="the same statements a pair at a time",
            ),
            Way(
                "asyncpg, the service's statements grouped across clients (its grouped_sessions)",
                lambda seconds: pg_grouped_pairs(url, tenant_id, seconds, args.clients),
            ),
        ],
        events=[
            Way("asyncpg executemany INSERT … ON CONFLICT DO NOTHING", events(executemany)),
            Way("asyncpg INSERT … SELECT FROM unnest(…) ON CONFLICT …", events(unnest)),
            Way(
                "asyncpg, one statement: INSERT … unnest(…) … RETURNING, counted (autocommit)",
                events(unnest_counted, counts=True),
            ),
            Way(
                "asyncpg INSERT … SELECT FROM json_to_recordset(…) ON CONFLICT …",
                events(json_recordset),
            ),
            Way(
                "asyncpg COPY to a temporary table, INSERT … SELECT … ON CONFLICT …",
                events(copy_then_insert, create_events_in),
            ),
            Way("asyncpg COPY into events", events(copy), skips_duplicates=False),
            Way(
                "asyncpg, the service's own statements: read the sessions; insert and count"
                " unless they changed",
                lambda seconds: pg_service_batches(url, tenant_id, sessions, numbers, seconds),
                service_statements=True,
            ),
        ],
    )


# SQLite, sqlite3


def sqlite_connect(path: str) -> sqlite3.Connection:
    """Set up as the service's engine sets up its connections (adapters/sqlalchemy/engine.py),
    so that a commit costs both sides the same."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


@contextmanager
def sqlite_connections(path: str, count: int) -> Iterator[list[sqlite3.Connection]]:
    connections = [sqlite_connect(path) for _ in range(count)]
    try:
        yield connections
    finally:
        for conn in connections:
            conn.close()


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A transaction that takes the write lock when it begins, as the service's do."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def sqlite_instant(at: datetime) -> str:
    """An instant as the service stores it in SQLite (UTCDateTime): naive UTC text, to the
    millisecond, its microseconds always written."""
    return to_the_millisecond(at.astimezone(UTC)).strftime("%Y-%m-%d %H:%M:%S.%f")


def sqlite_pairs(path: str, tenant_id: str, seconds: float, threads: int) -> float:
    with sqlite_connections(path, threads) as connections:

        def pair(i: int) -> int:
            conn, session_id = connections[i], str(uuid.uuid4())
            with immediate(conn):
                started = sqlite_instant(datetime.now(UTC))
                conn.execute(SQLITE_SESSION_INSERT, (tenant_id, session_id, f"u{i}", started))
            with immediate(conn):
                ended = sqlite_instant(datetime.now(UTC))
                conn.execute(SQLITE_SESSION_CLOSE, (tenant_id, session_id, ended))
            return 1

        return run_threads(seconds, threads, pair)


def sqlite_events(
    path: str, tenant_id: str, sessions: list[str], numbers: Numbers, seconds: float, threads: int
) -> float:
    # Each thread takes its share of the sessions in turn; one thread takes them all.
    turns = [itertools.cycle(range(t, len(sessions), threads)) for t in range(threads)]
    with sqlite_connections(path, threads) as connections:

        def batch(t: int) -> int:
            conn, i = connections[t], next(turns[t])
            taken = numbers.take(i)
            at = sqlite_instant(datetime.now(UTC))
            with immediate(conn):
                conn.executemany(SQLITE_EVENTS, event_rows(tenant_id, sessions[i], taken, at))
                conn.execute(SQLITE_SESSION_COUNT, (tenant_id, sessions[i], BATCH, taken[-1]))
            return BATCH

        return run_threads(seconds, threads, batch)


def sqlite_grouped_pairs(path: str, tenant_id: str, seconds: float, clients: int) -> float:
    """The pairs of `clients` clients as the service's writers commit them under load (its
    sqlite_statements group commit), at best: every client's start in one transaction, then
    every client's exit in one; one thread, SQLite having one writer."""
    with sqlite_connections(path, 1) as (conn,):

        def pairs(_: int) -> int:
            ids = [str(uuid.uuid4()) for _ in range(clients)]
            with immediate(conn):
                started = sqlite_instant(datetime.now(UTC))
                conn.executemany(
                    SQLITE_SESSION_INSERT, [(tenant_id, i, f"u{i}", started) for i in ids]
                )
            with immediate(conn):
                ended = sqlite_instant(datetime.now(UTC))
                conn.executemany(SQLITE_SESSION_CLOSE, [(tenant_id, i, ended) for i in ids])
            return clients

        return run_threads(seconds, 1, pairs)


def sqlite_grouped_events(
    path: str, tenant_id: str, sessions: list[str], numbers: Numbers, seconds: float, clients: int
) -> float:
    """The batches of `clients` clients committed together, as the service's writers commit
    them under load, at best: one transaction for a batch of each client's; one thread."""
    turns = itertools.cycle(range(len(sessions)))
    with sqlite_connections(path, 1) as (conn,):

        def batches(_: int) -> int:
            at = sqlite_instant(datetime.now(UTC))
            with immediate(conn):
                for _ in range(clients):
                    i = next(turns)
                    taken = numbers.take(i)
                    conn.executemany(SQLITE_EVENTS, event_rows(tenant_id, sessions[i], taken, at))
                    conn.execute(SQLITE_SESSION_COUNT, (tenant_id, sessions[i], BATCH, taken[-1]))
            return BATCH * clients

        return run_threads(seconds, 1, batches)


def sqlite_ways(
    args: argparse.Namespace, url: str, tenant_id: str, sessions: list[str], numbers: Numbers
) -> Ways:
    path = url.removeprefix("sqlite:///")
    pairs, events = [], []
    for threads in (1, SQLITE_THREADS):
        name = f"sqlite3, {threads} thread(s)"

        def paired(seconds: float, threads: int = threads) -> Awaitable[float]:
            return asyncio.to_thread(sqlite_pairs, path, tenant_id, seconds, threads)

        def batched(seconds: float, threads: int = threads) -> Awaitable[float]:
            return asyncio.to_thread(
                sqlite_events, path, tenant_id, sessions, numbers, seconds, threads
            )

        pairs.append(Way(name, paired))
        events.append(Way(f"{name}, executemany INSERT OR IGNORE", batched))
    pairs.append(
        Way(
            f"sqlite3, 1 thread, the {args.clients} clients' starts in one transaction, then their exits",
            lambda seconds: asyncio.to_thread(
                sqlite_grouped_pairs, path, tenant_id, seconds, args.clients
            ),
        )
    )
    events.append(
        Way(
            f"sqlite3, 1 thread, a batch of each of {EVENT_CLIENTS} clients in one transaction",
            lambda seconds: asyncio.to_thread(
                sqlite_grouped_events, path, tenant_id, sessions, numbers, seconds, EVENT_CLIENTS
            ),
        )
    )
    return Ways(pairs, events)


# MongoDB, pymongo


async def mongo_pairs(
    db: AsyncDatabase[dict[str, Any]], tenant_id: str, seconds: float, clients: int
) -> float:
    async def pair(i: int) -> int:
        session_id = str(uuid.uuid4())
        at = datetime.now(UTC)
        await db["sessions"].insert_one(
            {
                "tenant_id": tenant_id,
                "id": session_id,
                "kind": "webinar",
                "resource_id": "w1",
                "subject_id": f"u{i}",
                "status": "active",
                "started_at": at,
                "last_seen_at": at,
                "attributes": {},
                "usage": {},
                "event_count": 0,
                "max_sequence_no": 0,
                "charge_state": "none",
            }
        )
        ended = datetime.now(UTC)
        await db["sessions"].update_one(
            {"tenant_id": tenant_id, "id": session_id, "status": "active"},
            {"$set": {"status": "completed", "ended_at": ended, "last_seen_at": ended}},
        )
        return 1

    return await run_for(seconds, clients, pair)


async def mongo_events(
    db: AsyncDatabase[dict[str, Any]],
    tenant_id: str,
    sessions: list[str],
    numbers: Numbers,
    seconds: float,
) -> float:

    async def batch(i: int) -> int:
        rows = event_rows(tenant_id, sessions[i], numbers.take(i), datetime.now(UTC))
        documents = [
            {**dict(zip(EVENT_COLUMNS, row, strict=True)), "meters": {"taps": 1}} for row in rows
        ]
        await db["events"].insert_many(documents, ordered=False)
        await db["sessions"].update_one(
            {"tenant_id": tenant_id, "id": sessions[i]},
            {"$inc": {"event_count": BATCH, "usage.taps": BATCH}},
        )
        return BATCH

    return await run_for(seconds, len(sessions), batch)


def mongo_ways(
    args: argparse.Namespace, url: str, tenant_id: str, sessions: list[str], numbers: Numbers
) -> Ways:
    def timed(
        measure: Callable[[AsyncDatabase[dict[str, Any]], float], Awaitable[float]],
    ) -> Callable[[float], Awaitable[float]]:
        async def rate(seconds: float) -> float:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
            try:
                return await measure(client.get_default_database(), seconds)
            finally:
                await client.close()

        return rate

    return Ways(
        [
            Way(
                "pymongo insert_one + update_one",
                timed(lambda db, seconds: mongo_pairs(db, tenant_id, seconds, args.clients)),
            )
        ],
        [
            Way(
                "pymongo insert_many (unordered) + update_one",
                timed(lambda db, seconds: mongo_events(db, tenant_id, sessions, numbers, seconds)),
            )
        ],
    )


def direct_ways(
    args: argparse.Namespace, svc: Service, tenant_id: str, sessions: list[str], numbers: Numbers
) -> Ways:
    """The storage's direct ways of writing into `sessions`, numbering their batches by
    `numbers`, as HTTP's batches on them must."""
    ways = {"sqlite": sqlite_ways, "mongodb": mongo_ways}.get(args.storage, pg_ways)
    return ways(args, svc.storage_url, tenant_id, sessions, numbers)


# The figures


def fastest(surveyed: list[tuple[Way, float]]) -> int:
    """Which way is the ratio's baseline: the fastest that keeps the service's guarantees."""
    kept = [(rate, i) for i, (way, rate) in enumerate(surveyed) if way.skips_duplicates]
    return max(kept)[1]


def baselines(surveyed: list[tuple[Way, float]]) -> list[int]:
    """The ways the HTTP figure is compared with: the fastest, then the one sending the
    service's own statements, if there is one and it is not the fastest."""
    best = fastest(surveyed)
    same = [i for i, (way, _) in enumerate(surveyed) if way.service_statements and i != best]
    return [best, *same]


def print_figures(
    title: str, kind: str, surveyed: list[tuple[Way, float]], http: dict[int, dict[str, Any]]
) -> None:
    best, compared = fastest(surveyed), baselines(surveyed)
    print(title)
    for i, (way, rate) in enumerate(surveyed):
        note = ""
        if i == best and len(surveyed) > 1:
            note = "  <- the fastest with the service's guarantees: the ratio's baseline"
        elif not way.skips_duplicates:
            note = "  (information only: does not skip duplicates, fails on one)"
        print(f"  direct {way.name:<76} {rate:>8,.0f}{note}")
    for workers, found in http.items():
        rate = found[kind]
        ratios = ", ".join(
            f"{rate / direct:.1%} of {'the fastest' if i == best else surveyed[i][0].compared_as}"
            f" ({direct:,.0f})"
            for i, direct in zip(compared, found[f"{kind} direct"], strict=True)
        )
        label = f"HTTP, {workers} server worker(s), in turns with those"
        print(f"  {label:<83} {rate:>8,.0f}  ratio {ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--storage", choices=STORAGES, default="postgresql")
    add_worker_flags(parser)
    args = parser.parse_args()

    http: dict[int, dict[str, Any]] = {}
    surveyed: dict[str, list[tuple[Way, float]]] = {}
    for workers in worker_counts(args):
        with service(workers, args.storage) as svc:
            # The direct ways write into the events' sessions without a sign of life: with a
            # long --seconds the survey would outlast the idle timeout, and the reaper would end
            # them before HTTP's turn.
            tenant_id = svc.unlimited_tenant("bench", idle_timeouts={"kiosk": None})
            svc.store_deployed_sessions(tenant_id)
            key = svc.cli("keys", "create", "--tenant", "bench", "--role", "ingest")
            sessions = asyncio.run(open_sessions(svc.base, key, EVENT_CLIENTS))
            numbers = Numbers(len(sessions))
            ways = direct_ways(args, svc, tenant_id, sessions, numbers)
            # Once: what the driver does does not depend on the server's workers.
            surveyed = surveyed or asyncio.run(survey(args, ways))
            compared = {
                kind: [getattr(ways, kind)[i] for i in baselines(surveyed[kind])]
                for kind in surveyed
            }
            http[workers] = asyncio.run(
                peak_rss_while(
                    svc.process.pid, figures(args, svc, key, sessions, numbers, compared)
                )
            )

    print(
        f"{args.storage}, {os.cpu_count()} cores shared by client, server and database;"
        f" {args.seconds:g} s per figure, HTTP and direct in {ROUNDS} turns each"
    )
    print_figures(
        f"(a) start+exit pairs/s, {args.clients} HTTP clients", "pairs", surveyed["pairs"], http
    )
    print_figures(
        f"(b) events/s, batches of {BATCH}, {EVENT_CLIENTS} clients",
        "events",
        surveyed["events"],
        http,
    )
    for workers, found in http.items():
        print(
            f"server CPU, {workers} worker(s), cores each: pairs {found['pairs cores']},"
            f" events {found['events cores']}"
        )
    for workers, found in http.items():
        print(rss_line(found, workers))


if __name__ == "__main__":
    main()
