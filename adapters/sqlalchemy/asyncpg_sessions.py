"""Sessions read, locked and written through asyncpg (adapters.sqlalchemy.asyncpg_statements):
the statements of the lifecycle and of ingest."""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from types import SimpleNamespace
from typing import Any

from adapters.sqlalchemy.asyncpg_settlements import records_inserted, records_of_members
from adapters.sqlalchemy.asyncpg_statements import Driver, unnest
from adapters.sqlalchemy.engine import json_text
from adapters.sqlalchemy.ledger_rows import Record
from adapters.sqlalchemy.quantities import from_nanos, to_nanos
from adapters.sqlalchemy.session_rows import from_row, gaps_bound, gaps_sql, to_row, with_gaps
from adapters.sqlalchemy.settlement_batches import kept_balance
from adapters.sqlalchemy.settlement_claims import Shape, shape_of
from adapters.sqlalchemy.tables import session_meters, sessions
from domain.session import Session
from domain.usage import Usage

JSON_COLUMNS = ("attributes", "summary", "deleted_events")
METER_COLUMNS = ("session_id", "meter", "quantity_nanos", "is_decimal")

# A session with its meters, in one statement (so from one snapshot): [[meter, nanos, decimal]],
# and the version of its row (PostgreSQL's xmin: a new one with every UPDATE).
_READ = (
    "SELECT s.*, s.xmin::text::bigint AS row_version,"
    " (SELECT json_agg(json_build_array(m.meter, m.quantity_nanos, m.is_decimal))"
    " FROM session_meters m WHERE m.tenant_id = s.tenant_id AND m.session_id = s.id) AS meters"
    "{balance} FROM sessions s WHERE {which}"
)
_ONE = "s.tenant_id = $1 AND s.id = $2"
_BALANCE = f", {kept_balance('s.tenant_id', 's.subject_id')} AS balance"
READ_ONE = _READ.format(balance="", which=_ONE)
# Also with its subject's balance: for a close that may settle its charge in its write.
READ_WITH_BALANCE = _READ.format(balance=_BALANCE, which=_ONE)
# Several sessions of any tenants: their tenant ids $1, their ids $2 (statement_groups).
_MANY = "(s.tenant_id, s.id) IN (SELECT * FROM unnest($1::varchar[], $2::varchar[]))"
READ_MANY = _READ.format(balance="", which=_MANY)
READ_MANY_WITH_BALANCE = _READ.format(balance=_BALANCE, which=_MANY)
# Locked in id order, so that writers locking several sessions never deadlock; with the meters
# of those among $3. A statement that waited for the lock sees the locked rows as the writer
# before it left them, but other tables as of its own start (READ COMMITTED re-reads only the rows
# it locks): the meters are read by session_usage_now (migration 0022), whose query takes a
# snapshot of its own when called, once its argument has every row locked.
LOCK = (
    "WITH locked AS MATERIALIZED (SELECT * FROM sessions"
    " WHERE tenant_id = $1 AND id = ANY($2::varchar[]) ORDER BY id FOR UPDATE)"
    " SELECT l.*, u.meters FROM locked l LEFT JOIN session_usage_now($1,"
    " ARRAY(SELECT id FROM locked WHERE id = ANY($3::varchar[]))) u ON u.id = l.id"
)
GAPS = gaps_sql(("$1", "$2", "$3::bigint"))


def _add_usage(condition: str = "TRUE", first: int = 2) -> str:
    """Usage added as `save` writes: quantities added to the sessions' meters (concurrent adds
    both count), the rows given as arrays from $`first`; only if `condition` holds."""
    return (
        f"INSERT INTO session_meters (tenant_id, {', '.join(METER_COLUMNS)})"
        f" SELECT $1, * FROM {unnest(session_meters, METER_COLUMNS, first)} WHERE {condition}"
        " ON CONFLICT (tenant_id, session_id, meter) DO UPDATE SET"
        " quantity_nanos = session_meters.quantity_nanos + excluded.quantity_nanos,"
        " is_decimal = session_meters.is_decimal OR excluded.is_decimal"
    )


_COLUMNS = tuple(sessions.c.keys())
# A new session; its row's version returned if stored (remembered_sessions).
INSERT = (
    f"INSERT INTO sessions ({', '.join(_COLUMNS)})"
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(_COLUMNS) + 1))}) ON CONFLICT DO NOTHING"
    " RETURNING xmin::text::bigint"
)
# Several new sessions of any tenants, as arrays (statement_groups); those stored returned with
# their rows' versions. In one order, the key's, whatever the group: two groups storing one id
# never wait on each other in a cycle.
INSERT_MANY = (
    f"INSERT INTO sessions ({', '.join(_COLUMNS)})"
    f" SELECT * FROM {unnest(sessions, _COLUMNS, 1)} AS r({', '.join(_COLUMNS)})"
    " ORDER BY r.tenant_id, r.id ON CONFLICT DO NOTHING"
    " RETURNING tenant_id, id, xmin::text::bigint AS row_version"
)


async def lock(
    driver: Driver,
    tenant_id: str,
    session_ids: Sequence[str],
    metered: Collection[str] | None = None,
    gaps: bool = True,
) -> dict[str, Session]:
    """The sessions of these ids, locked until the transaction ends, with usage (of the
    `metered` ones only, if given) and with gaps unless told not to (finding them reads all of
    a session's events)."""
    ids = list(session_ids)
    rows = await driver.fetch(LOCK, tenant_id, ids, ids if metered is None else list(metered))
    return await _loaded(driver, rows, gaps)


async def read(driver: Driver, tenant_id: str, session_id: str) -> Session | None:
    """The session of this id, with usage and gaps, or None."""
    found = await read_versioned(driver, tenant_id, session_id)
    return None if found is None else found[0]


@dataclass(frozen=True)
class Version:
    """What a session was when read: its row's version, and how many meters it had with what
    total (quantities only ever grow, so an addition changes one or the other). Usage is added
    to meters without always writing the session's row (a LiveKit track's seconds)."""

    row: int
    meters: int
    nanos: int
    balance: int | None = None  # of its subject, when read with it


def after_save(read: Version, session: Session, added: Usage, row: int) -> Version:
    """The Version of a session read at `read` once `save` wrote it, its row's new version
    `row`, counted into it `added` (as `session` holds it now): a meter for each it has, their
    sum grown by what `save` added (the nano-units `_meter_values` binds)."""
    nanos = read.nanos + sum(to_nanos(quantity) for quantity in added.values())
    return Version(row, len(session.usage), nanos)


async def read_versioned(
    driver: Driver,
    tenant_id: str,
    session_id: str,
    with_balance: bool = False,
    gaps: bool = True,
) -> tuple[Session, Version] | None:
    """The session of this id, with usage and gaps (unless told not to: `add_gaps`), and its
    Version (`with_balance`: with its subject's balance); or None."""
    rows = await driver.fetch(
        READ_WITH_BALANCE if with_balance else READ_ONE, tenant_id, session_id
    )
    return await _versioned(driver, rows[0], with_balance, gaps) if rows else None


async def read_many(
    driver: Driver, keys: Sequence[tuple[str, str]], with_balance: bool = False
) -> list[tuple[Session, Version] | None]:
    """`read_versioned` of several sessions, each by its (tenant id, id), in one statement,
    without their gaps: finding them is each session's own statement (`add_gaps`)."""
    tenant_ids, ids = zip(*keys, strict=True)
    statement = READ_MANY_WITH_BALANCE if with_balance else READ_MANY
    rows = await driver.fetch(statement, list(tenant_ids), list(ids))
    found = {(row["tenant_id"], row["id"]): row for row in rows}
    return [
        None if (row := found.get(key)) is None else await _versioned(driver, row, with_balance)
        for key in keys
    ]


async def _versioned(
    driver: Driver, row: Any, with_balance: bool = False, gaps: bool = False
) -> tuple[Session, Version]:
    meters = row["meters"] or ()
    balance = int(row["balance"]) if with_balance else None  # numeric: a Decimal
    version = Version(
        row["row_version"], len(meters), sum(nanos for _, nanos, _ in meters), balance
    )
    return (await _loaded(driver, [row], gaps))[row["id"]], version


async def _loaded(driver: Driver, rows: Sequence[Any], gaps: bool = True) -> dict[str, Session]:
    found = {}
    for row in rows:
        session = found[row["id"]] = from_row(SimpleNamespace(**row))
        meters = row.get("meters") or ()
        session.usage = {meter: from_nanos(nanos, decimal) for meter, nanos, decimal in meters}
        if gaps:
            await add_gaps(driver, session)
    return found


def may_have_gaps(session: Session) -> bool:
    """Whether some of the session's numbers up to its highest were never received."""
    return session.event_count < session.max_sequence_no


async def add_gaps(driver: Driver, session: Session) -> None:
    """Give the session its gaps, if it has any (finding them reads its events)."""
    if may_have_gaps(session):
        bound = gaps_bound(session)
        with_gaps(session, await driver.fetch(GAPS, session.tenant_id, session.id, bound))


def _bound(row: Mapping[str, Any], column: str) -> Any:
    """A session row's value of `column` as the driver takes it (a JSON column as its text)."""
    return json_text(row[column]) if column in JSON_COLUMNS else row[column]


async def insert(driver: Driver, session: Session) -> Version | None:
    """Store a new session: its Version; None (nothing stored) if its id is taken."""
    row = to_row(session)
    values = [_bound(row, c) for c in _COLUMNS]
    stored = await driver.fetch(INSERT, *values)
    return Version(stored[0][0], 0, 0) if stored else None


async def insert_many(driver: Driver, new: Sequence[Session]) -> list[Version | None]:
    """`insert` of several sessions, in one statement: each one's Version, if it was stored."""
    rows = [to_row(session) for session in new]
    values = [[_bound(row, c) for row in rows] for c in _COLUMNS]
    stored = {
        (row["tenant_id"], row["id"]): Version(row["row_version"], 0, 0)
        for row in await driver.fetch(INSERT_MANY, *values)
    }
    return [stored.get((session.tenant_id, session.id)) for session in new]


async def save(
    driver: Driver,
    changed: Sequence[Session],
    columns: Sequence[str],
    usage: Mapping[str, Usage],
) -> None:
    """Write these columns of sessions locked in this transaction and add `usage` to their
    meters, in one statement."""
    statement = _save(tuple(columns))
    await driver.execute(statement, changed[0].tenant_id, *save_values(changed, columns, usage))


async def save_unless_changed(
    driver: Driver,
    session: Session,
    version: Version,
    columns: Sequence[str],
    usage: Usage,
    records: Sequence[Record] | None = None,
) -> bool:
    """As `save`, without a lock and in one statement, for a session read at `version`: written
    only if it is still that version, else nothing is (False). The statement's UPDATE waits for
    a writer holding the row and then sees its row as that writer left it. One session's values
    go as plain parameters, not arrays: asyncpg checks each element of an array parameter
    against three abstract base classes, about 50 checks for an exit's arrays.

    With a settlement's `records` (`session` settled by it, its subject's balance read with it
    as `version.balance`; a charge of nothing may have none): written, records included, only if
    also its subject's ledger lock is free and its balance is still that one once it is held
    (migration 0031)."""
    row = to_row(session)
    values = [_bound(row, c) for c in columns]
    shape = None if records is None else shape_of(records)
    statement = update_unless_changed(tuple(columns), usage=bool(usage), settled=shape)
    written = await driver.fetchval(
        statement,
        session.tenant_id,
        session.id,
        *values,
        version.row,
        version.meters,
        Decimal(version.nanos),
        *(_meter_values({session.id: usage}) if usage else ()),
        *(() if records is None else (version.balance,)),
        *(value for _, record in records or () for value in record.values()),
    )
    return bool(written)


async def save_many_unless_changed(
    driver: Driver,
    read: Sequence[tuple[Session, Version]],
    columns: Sequence[str],
    records: Sequence[Sequence[Record]] | None = None,
) -> list[bool]:
    """`save_unless_changed` of several sessions (of any tenants, and of as many subjects) with
    no usage, in one statement: whether each was written. A session another writer holds
    locked is not written (its caller then writes it the locked way): waiting for it would hold
    up the group.

    With each session's settlement `records` (all of one shape; its subject's balance read with
    it): written, its records included, only if also its subject's ledger lock is free and its
    balance still the one read (as save_unless_changed)."""
    rows = [to_row(session) for session, _ in read]
    # One array a parameter, an element a member: the sessions' columns, their Versions, then
    # with records their balances and each record's columns.
    arrays: list[list[Any]] = [
        [_bound(row, c) for row in rows] for c in ("tenant_id", "id", *columns)
    ]
    arrays += versions(read)
    shape = None
    if records is not None:
        shape = shape_of(records[0])
        arrays.append([v.balance for _, v in read])
        for slot, (_, slot_columns) in enumerate(shape):
            arrays += [[member[slot][1][column] for member in records] for column in slot_columns]
    statement = update_many_unless_changed(tuple(columns), shape)
    saved = {(row["tenant_id"], row["id"]) for row in await driver.fetch(statement, *arrays)}
    return [(session.tenant_id, session.id) in saved for session, _ in read]


# A session `s` whose row is still the version `v` holds as `row_version`; and, UNCHANGED, whose
# meters are still as read too (`meters`, `nanos`).
SAME_ROW = "s.xmin::text::bigint = v.row_version"
UNCHANGED = (
    f"{SAME_ROW} AND (SELECT (count(*), coalesce(sum(m.quantity_nanos), 0)) FROM session_meters m"
    " WHERE m.tenant_id = s.tenant_id AND m.session_id = s.id) = (v.meters, v.nanos)"
)


def free_as_read(condition: str) -> str:
    """The CTE `free`: the sessions of the CTE `v` (their tenant_id, id and Versions' parts)
    for which `condition` holds, locked in key order (so that two such statements never wait
    on each other in a cycle), skipping those another writer holds: a write guarded by its read
    waits for no one."""
    return (
        "free AS MATERIALIZED (SELECT s.tenant_id, s.id FROM sessions s JOIN v USING (tenant_id, id)"
        f" WHERE {condition} ORDER BY s.tenant_id, s.id FOR UPDATE OF s SKIP LOCKED)"
    )


def versions(read: Sequence[tuple[Session, Version]]) -> list[list[Any]]:
    """The arrays of the Versions' three parts, as `UNCHANGED` compares them."""
    return [
        [v.row for _, v in read],
        [v.meters for _, v in read],
        [Decimal(v.nanos) for _, v in read],
    ]


@cache
def update_many_unless_changed(columns: tuple[str, ...], settled: Shape | None = None) -> str:
    """`save_many_unless_changed`'s statement: the sessions' tenant ids $1, ids $2, `columns`
    from $3, then their Versions' row and meters as arrays; with `settled` (the shape of each
    member's settlement records), their balances read, then each record's columns, member by
    member."""
    given = ("tenant_id", "id", *columns)
    n = len(given) + 1
    typed = [f"${n}::bigint[]", f"${n + 1}::bigint[]", f"${n + 2}::numeric[]"]
    names = ["row_version", "meters", "nanos"]
    unchanged = UNCHANGED
    records = ""
    if settled is not None:
        typed.append(f"${n + 3}::numeric[]")
        names.append("balance")
        unchanged += " AND ledger_balance_if_free(s.tenant_id, s.subject_id) = v.balance"
        records = records_of_members(settled, n + 4, "updated")
    arrays = unnest(sessions, given, 1, typed)
    return (
        f"WITH v AS (SELECT * FROM {arrays} WITH ORDINALITY"
        f" AS v({', '.join((*given, *names))}, member)), {free_as_read(SAME_ROW)},"
        f" updated AS (UPDATE sessions AS s SET {', '.join(f'{c} = v.{c}' for c in columns)}"
        " FROM v JOIN free USING (tenant_id, id)"
        f" WHERE s.tenant_id = v.tenant_id AND s.id = v.id AND {unchanged}"
        f" RETURNING s.tenant_id, s.id, v.member){records}"
        " SELECT tenant_id, id FROM updated"
    )


def save_values(
    changed: Sequence[Session], columns: Sequence[str], usage: Mapping[str, Usage]
) -> list[list[Any]]:
    """The arrays `save` binds from $2: the meters' four columns, then the sessions' id and
    `columns` (up to `after_save_values`)."""
    rows = [to_row(session) for session in changed]
    values = [[_bound(row, c) for row in rows] for c in ("id", *columns)]
    return [*_meter_values(usage), *values]


def _meter_values(usage: Mapping[str, Usage]) -> list[list[Any]]:
    """The arrays of session_meters' four columns (METER_COLUMNS) holding `usage`."""
    meters = [
        (session_id, meter, to_nanos(quantity), isinstance(quantity, Decimal))
        for session_id, added in usage.items()
        for meter, quantity in added.items()
    ]
    return [list(column) for column in zip(*meters, strict=True)] or [[]] * 4


def _update(columns: tuple[str, ...], condition: str = "TRUE", returning: str = "") -> str:
    first = 2 + len(METER_COLUMNS)
    return (
        f"UPDATE sessions AS s SET {', '.join(f'{c} = v.{c}' for c in columns)}"
        f" FROM {unnest(sessions, ('id', *columns), first)} AS v(id, {', '.join(columns)})"
        f" WHERE s.tenant_id = $1 AND s.id = v.id AND {condition}{returning}"
    )


def after_save_values(columns: Sequence[str]) -> int:
    """The first parameter after `save_values`' arrays."""
    return 2 + len(METER_COLUMNS) + 1 + len(columns)


@cache
def _save(columns: tuple[str, ...]) -> str:
    return f"WITH added AS ({_add_usage()}) {_update(columns)}"


# What `save_if`'s `updated` returns when told to: each session's id and its row's new version.
NEW_VERSIONS = " RETURNING s.id, s.xmin::text::bigint AS row_version"


@cache
def save_if(columns: tuple[str, ...], condition: str, returning: str = "") -> str:
    """`save` as two CTEs of a larger statement (`added`, `updated`), each writing only if
    `condition` holds; bound as `save` is, the larger statement's own parameters after them."""
    updated = _update(columns, condition, returning)
    return f"added AS ({_add_usage(condition)}), updated AS ({updated})"


@cache
def update_unless_changed(
    columns: tuple[str, ...], usage: bool, settled: Shape | None = None
) -> str:
    """`save_unless_changed`'s statement (also sent by benchmarks/ingest.py as the service sends
    it): the tenant $1, the session's id $2, `columns` from $3, the Version's three parts, then,
    with `usage`, the meters' arrays; with `settled` (the shape of a settlement's records), the
    balance read, then the records' columns."""
    version = 3 + len(columns)
    changes = ", ".join(f"{c} = ${n}" for n, c in enumerate(columns, start=3))
    unchanged = (
        f"s.xmin::text::bigint = ${version}"
        " AND (SELECT (count(*), coalesce(sum(m.quantity_nanos), 0)) FROM session_meters m"
        f" WHERE m.tenant_id = $1 AND m.session_id = s.id) = (${version + 1}::bigint,"
        f" ${version + 2}::numeric)"
    )
    after = version + 3
    added = ""
    if usage:
        added = f", added AS ({_add_usage('EXISTS (SELECT FROM updated)', after)})"
        after += len(METER_COLUMNS)
    records = ""
    if settled is not None:
        unchanged += f" AND ledger_balance_if_free($1, s.subject_id) = ${after}::numeric"
        records = records_inserted(settled, after + 1, "updated")
    return (
        f"WITH updated AS (UPDATE sessions AS s SET {changes}"
        f" WHERE s.tenant_id = $1 AND s.id = $2 AND {unchanged} RETURNING s.id)"
        f"{added}{records} SELECT count(*) FROM updated"
    )
