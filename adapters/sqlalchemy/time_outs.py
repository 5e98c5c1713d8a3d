"""The reaper's time-out of a batch of stale sessions as one statement, for the drivers the SQL
family sends it to directly: asyncpg on PostgreSQL (asyncpg_statements), sqlite3 on SQLite's
thread (sqlite_statements).

What it does to each session it picks is what Session.close(Session.time_out()) does (the
contract suite holds the two to the same result): ended at its last sign of life as timed_out,
left pending a charge when its kind is rated and it has a subject, else not charged. An active
session has no exit reason or summary to clear, and a time-out adds no usage.

The sessions picked are the longest silent first, in the order of the index on (tenant, status,
last seen), in a CTE (evaluated once: a subquery of the UPDATE could run again and pick more),
joined by primary key alone (another condition would give a planner without fresh statistics
another way in). On PostgreSQL they are picked FOR UPDATE SKIP LOCKED: concurrent reapers take
disjoint sessions instead of queueing, one locked by a sign of life being stored is left for the
next run, and a row changed since the statement began is checked again under its lock, so a sign
of life committed first spares its session. SQLite's writers take its one lock in turn.
"""

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from domain.session import ChargeState, Session, SessionStatus
from domain.staleness import Staleness

# A parameter's placeholder in the statement, the parameter kept in order by the caller.
Parameter = Callable[[Any], str]
# A driver's time_out (asyncpg_time_outs, sqlite_time_outs) on its connection: (tenant_id,
# staleness, limit, rated_kinds) -> the sessions closed, in id order.
TimeOut = Callable[[str, Staleness, int, frozenset[str]], Coroutine[Any, Any, list[Session]]]


def time_out_statement(
    tenant_id: str,
    staleness: Staleness,
    limit: int,
    rated_kinds: frozenset[str],
    parameter: Parameter,
    lock: str,
) -> str:
    """The UPDATE … RETURNING id; `lock`: the locking clause of the pick (" FOR UPDATE SKIP
    LOCKED" on PostgreSQL, "" on SQLite)."""
    # Placeholders in the order of the text: sqlite3's `?` take their parameters in turn.
    picked = (
        "WITH picked AS (SELECT id AS picked_id FROM sessions"
        f" WHERE tenant_id = {parameter(tenant_id)} AND status = {_text(SessionStatus.ACTIVE)}"
        f" AND ({_stale(staleness, parameter)})"
        f" ORDER BY last_seen_at LIMIT {parameter(limit)}{lock})"
    )
    rated = ", ".join(parameter(kind) for kind in sorted(rated_kinds)) or "NULL"
    return (
        f"{picked} UPDATE sessions SET status = {_text(SessionStatus.TIMED_OUT)},"
        " ended_at = last_seen_at, charge_state = CASE"
        f" WHEN kind IN ({rated}) AND subject_id IS NOT NULL THEN {_text(ChargeState.PENDING)}"
        f" ELSE {_text(ChargeState.NOT_CHARGED)} END FROM picked"
        f" WHERE tenant_id = {parameter(tenant_id)} AND id = picked.picked_id RETURNING id"
    )


def _stale(staleness: Staleness, parameter: Parameter) -> str:
    """Staleness.is_stale as a condition on active sessions' rows."""
    conditions = []
    if staleness.started_before is not None:
        conditions.append(f"started_at < {parameter(staleness.started_before)}")
    for kind, cutoff in staleness.by_kind.items():
        if cutoff is not None:
            conditions.append(f"(kind = {parameter(kind)} AND last_seen_at < {parameter(cutoff)})")
    if staleness.default is not None:
        others = ""
        if staleness.by_kind:
            kinds = ", ".join(parameter(kind) for kind in sorted(staleness.by_kind))
            others = f"kind NOT IN ({kinds}) AND "
        conditions.append(f"({others}last_seen_at < {parameter(staleness.default)})")
    return " OR ".join(conditions) or "1 = 0"


def _text(value: str) -> str:
    """A constant of the domain's (a status, a charge state) as an SQL literal."""
    assert value.isidentifier(), value
    return f"'{value}'"


class Numbered:
    """asyncpg's placeholders: $1, $2, …"""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


class Positional:
    """sqlite3's placeholders, `?`, with instants as SQLAlchemy keeps them on SQLite."""

    def __init__(self, instant: Callable[[datetime], str | None]) -> None:
        self.values: list[Any] = []
        self._instant = instant

    def __call__(self, value: Any) -> str:
        self.values.append(self._instant(value) if isinstance(value, datetime) else value)
        return "?"
