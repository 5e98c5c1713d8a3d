"""The session lifecycle's hottest statements on PostgreSQL, each sent grouped with concurrent
requests' of its kind (statement_groups): a start's INSERT, an exit's or a sign of life's read
and its write guarded by what was read."""

from collections.abc import Sequence
from functools import partial

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy import asyncpg_sessions
from adapters.sqlalchemy.asyncpg_sessions import Version
from adapters.sqlalchemy.asyncpg_statements import Driver
from adapters.sqlalchemy.statement_groups import StatementGroup
from domain.session import Session

Key = tuple[str, str]  # a session's tenant id and id
Read = tuple[Session, Version]


class GroupedSessions:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.insert = StatementGroup(
            engine, asyncpg_sessions.insert, asyncpg_sessions.insert_many, _session_key
        )
        self.read = StatementGroup(engine, _read_one, asyncpg_sessions.read_many, _itself)
        self._saves: dict[tuple[str, ...], StatementGroup[Read, bool]] = {}

    def save(self, columns: Sequence[str]) -> StatementGroup[Read, bool]:
        """The writes of these columns (and no usage) guarded by what was read."""
        key = tuple(columns)
        if key not in self._saves:
            self._saves[key] = StatementGroup(
                self._engine,
                partial(_save_one, columns=key),
                partial(asyncpg_sessions.save_many_unless_changed, columns=key),
                _read_key,
            )
        return self._saves[key]


async def _read_one(driver: Driver, key: Key) -> Read | None:
    return await asyncpg_sessions.read_versioned(driver, *key)


async def _save_one(driver: Driver, read: Read, columns: tuple[str, ...]) -> bool:
    session, version = read
    return await asyncpg_sessions.save_unless_changed(driver, session, version, columns, {})


def _session_key(session: Session) -> Key:
    return session.tenant_id, session.id


def _read_key(read: Read) -> Key:
    return _session_key(read[0])


def _itself(key: Key) -> Key:
    return key
