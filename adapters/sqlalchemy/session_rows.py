"""Sessions to rows and back, with their usage and event gaps."""

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Row,
    bindparam,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.sqlalchemy.meters import usage_of
from adapters.sqlalchemy.tables import events, sessions
from domain.event_gaps import gaps_beside_deleted
from domain.session import Charge, ChargeState, Session, SessionStatus

# What settling a session's charge changes in its row (Session.settle).
SETTLED_COLUMNS = ("charge_state", "charge_credits", "charge_balance_after", "charge_warning")


def to_row(session: Session) -> dict[str, Any]:
    charge = session.charge
    return {
        "tenant_id": session.tenant_id,
        "id": session.id,
        "kind": session.kind,
        "resource_id": session.resource_id,
        "subject_id": session.subject_id,
        "client_key": session.client_key,
        "status": session.status.value,
        "started_at": session.started_at,
        "last_seen_at": session.last_seen_at,
        "ended_at": session.ended_at,
        "attributes": session.attributes,
        "summary": session.summary,
        "exit_reason": session.exit_reason,
        "event_count": session.event_count,
        "max_sequence_no": session.max_sequence_no,
        "charge_state": session.charge_state.value,
        "charge_credits": None if charge is None else charge.credits,
        "charge_balance_after": None if charge is None else charge.balance_after,
        "charge_warning": None if charge is None else charge.warning,
        "charge_revision": session.charge_revision,
        "deleted_events": [list(numbers) for numbers in session.deleted_events],
    }


async def load(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[Session]:
    """Sessions from their rows, with usage (one query for all) and gaps (only where some exist)."""
    if not rows:
        return []
    tenant_id = rows[0].tenant_id
    usage = await usage_of(conn, tenant_id, [r.id for r in rows])
    loaded = []
    for row in rows:
        session = from_row(row)
        session.usage = usage[row.id]
        if row.event_count < row.max_sequence_no:
            with_gaps(session, await _gaps(conn, session))
        loaded.append(session)
    return loaded


def from_row(row: Any) -> Session:
    """The session as its row holds it (a Row, or anything with its columns as attributes),
    without usage or event gaps (see `load`)."""
    charge = None
    if row.charge_credits is not None:
        charge = Charge(row.charge_credits, row.charge_balance_after, row.charge_warning)
    return Session(
        tenant_id=row.tenant_id,
        id=row.id,
        kind=row.kind,
        resource_id=row.resource_id,
        subject_id=row.subject_id,
        client_key=row.client_key,
        started_at=row.started_at,
        last_seen_at=row.last_seen_at,
        status=SessionStatus(row.status),
        ended_at=row.ended_at,
        attributes=row.attributes,
        event_count=row.event_count,
        max_sequence_no=row.max_sequence_no,
        summary=row.summary,
        exit_reason=row.exit_reason,
        charge=charge,
        charge_state=ChargeState(row.charge_state),
        charge_revision=row.charge_revision,
        deleted_events=[(first, last) for first, last in row.deleted_events],
    )


def gaps_sql(placeholders: tuple[str, str, str]) -> str:
    """The gap query of the drivers' own paths, with their placeholders for the tenant, the
    session and the bound (gaps_bound): each number after a jump, with the one before it (the
    first number is compared with 0). A jump is `n - previous > 1`: `previous + 1` would be out
    of bigint's range after the bound MAX_SEQUENCE_NO, which is also stored."""
    tenant, session, bound = placeholders
    return (
        "SELECT previous + 1, n - 1 FROM (SELECT n, coalesce(lag(n) OVER (ORDER BY n), 0)"
        f" AS previous FROM (SELECT sequence_no AS n FROM events WHERE tenant_id = {tenant}"
        f" AND session_id = {session} UNION ALL SELECT {bound}) numbers) numbered"
        " WHERE n - previous > 1 ORDER BY n"
    )


def gaps_bound(session: Session) -> int:
    """A number the gap query takes as stored: the highest ever stored, when retention has
    deleted some (the numbers above those still stored may be missing; the highest arrived),
    else 0, which changes nothing."""
    return session.max_sequence_no if session.deleted_events else 0


def with_gaps(session: Session, found: Iterable[Sequence[int]]) -> None:
    """The session's gaps: those the gap query `found` (up to gaps_bound), less the numbers
    retention deleted."""
    highest = session.max_sequence_no
    session.event_gaps = gaps_beside_deleted(found, highest, highest, session.deleted_events)


async def _gaps(conn: AsyncConnection, session: Session) -> list[tuple[int, int]]:
    """Missing sequence numbers, found by the database (as gaps_sql)."""
    numbers = union_all(
        select(events.c.sequence_no.label("n")).where(
            events.c.tenant_id == session.tenant_id, events.c.session_id == session.id
        ),
        select(literal(gaps_bound(session), BigInteger).label("n")),
    ).subquery()
    numbered = select(
        numbers.c.n,
        func.coalesce(func.lag(numbers.c.n).over(order_by=numbers.c.n), 0).label("previous"),
    ).subquery()
    jumps = await conn.execute(
        select(numbered.c.previous, numbered.c.n)
        .where(numbered.c.n - numbered.c.previous > 1)
        .order_by(numbered.c.n)
    )
    return [(previous + 1, n - 1) for previous, n in jumps]


async def save(conn: AsyncConnection, changed: list[Session], columns: Sequence[str]) -> None:
    """Write these columns of sessions read (and locked) in this transaction, in one statement."""
    if not changed:
        return
    await conn.execute(
        update(sessions)
        .where(
            sessions.c.tenant_id == bindparam("key_tenant"),
            sessions.c.id == bindparam("key_id"),
        )
        .values(assignments(columns)),
        [{"key_tenant": s.tenant_id, "key_id": s.id} | new_values(s, columns) for s in changed],
    )


def assignments(columns: Sequence[str]) -> dict[str, BindParameter[Any]]:
    """The SET clause of an UPDATE of these columns of sessions, each taking its value from the
    parameter `new_<column>` (new_values gives them)."""
    return {c: bindparam(f"new_{c}") for c in columns}


def new_values(session: Session, columns: Sequence[str]) -> dict[str, Any]:
    """The `new_<column>` parameters of an UPDATE of these columns, from `session`."""
    row = to_row(session)
    return {f"new_{c}": row[c] for c in columns}
