"""Reading and adding to the session_meters rows that hold each session's usage."""

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    cast,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import TypeDecorator

from adapters.sqlalchemy.engine import insert
from adapters.sqlalchemy.quantities import NANOS, from_nanos, to_nanos
from adapters.sqlalchemy.tables import session_meters, sessions
from domain.usage import Usage


async def add_usage(
    conn: AsyncConnection,
    engine: AsyncEngine,
    tenant_id: str,
    usage_by_session: Mapping[str, Usage],
) -> None:
    """Add quantities to sessions' meters in one statement; concurrent adds both count."""
    rows = [
        {
            "tenant_id": tenant_id,
            "session_id": session_id,
            "meter": meter,
            "quantity_nanos": to_nanos(quantity),
            "is_decimal": isinstance(quantity, Decimal),
        }
        for session_id, usage in usage_by_session.items()
        for meter, quantity in usage.items()
    ]
    if not rows:
        return
    # executemany, not .values(rows): one cached statement whatever the number of rows.
    stmt = insert(engine, session_meters)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "session_id", "meter"],
        set_={
            "quantity_nanos": session_meters.c.quantity_nanos + stmt.excluded.quantity_nanos,
            "is_decimal": or_(session_meters.c.is_decimal, stmt.excluded.is_decimal),
        },
    )
    await conn.execute(stmt, rows)


async def usage_of(
    conn: AsyncConnection, tenant_id: str, session_ids: Iterable[str]
) -> dict[str, Usage]:
    ids = list(session_ids)
    usage: dict[str, Usage] = {i: {} for i in ids}
    if not ids:
        return usage
    rows = await conn.execute(
        select(session_meters).where(
            session_meters.c.tenant_id == tenant_id, session_meters.c.session_id.in_(ids)
        )
    )
    for row in rows:
        usage[row.session_id][row.meter] = from_nanos(row.quantity_nanos, row.is_decimal)
    return usage


class _Digits(TypeDecorator[int]):
    """An integer the query hands back as its decimal digits."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> int | None:
        return None if value is None else int(value)


def _exact_sum(nanos: ColumnElement[int]) -> ColumnElement[int]:
    """SUM(nanos), exact however large. A session holds less than 10^18 nano-units
    (domain.usage.MAX_QUANTITY), but ten of them can pass 2^63, where SQLite's sum() fails:
    whole units and the nano-units left over are summed apart (each sum far inside 64 bits),
    then written out as the digits of one integer."""
    whole = cast(func.sum(nanos // NANOS), BigInteger)
    rest = cast(func.sum(nanos % NANOS), BigInteger)
    units = cast(whole + rest // NANOS, String)
    # rest % NANOS as nine digits: the leading 1 of a ten-digit number keeps its zeros.
    fraction = func.substr(cast(rest % NANOS + NANOS, String), 2)
    return type_coerce(units + fraction, _Digits())


def meter_sums(*by: Any) -> Select[Any]:
    """Per `by` (columns of sessions) and meter: the sum in nano-units and whether any is a
    decimal. The caller adds its WHERE on sessions and groups by `by`."""
    return (
        select(
            *by,
            session_meters.c.meter,
            _exact_sum(session_meters.c.quantity_nanos),
            func.max(cast(session_meters.c.is_decimal, Integer)),
        )
        .join_from(
            sessions,
            session_meters,
            and_(
                session_meters.c.tenant_id == sessions.c.tenant_id,
                session_meters.c.session_id == sessions.c.id,
            ),
        )
        .group_by(session_meters.c.meter)
    )
