"""The session lifecycle's hottest statements on PostgreSQL, each sent grouped with concurrent
requests' of its kind (statement_groups): a start's INSERT, an exit's or a sign of life's read
(with its subject's balance, for an exit that may settle a charge), and its write guarded by
what was read, settling its first charge or not, when it adds no usage."""

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy import asyncpg_sessions
from adapters.sqlalchemy.asyncpg_sessions import Version
from adapters.sqlalchemy.asyncpg_statements import Driver, asyncpg_connection
from adapters.sqlalchemy.ledger_rows import Record
from adapters.sqlalchemy.settlement_claims import Shape
from adapters.sqlalchemy.statement_groups import StatementGroup
from domain.session import Session

Key = tuple[str, str]  # a session's tenant id and id
Read = tuple[Session, Version]
# A session closed with its first charge settled, as read, and the records the settlement writes.
Settling = tuple[Session, Version, Sequence[Record]]
Member = TypeVar("Member")


class GroupedSessions:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.insert: StatementGroup[Session, Version | None] = StatementGroup(
            engine, asyncpg_sessions.insert, asyncpg_sessions.insert_many, _session_key
        )
        self._reads = {
            with_balance: StatementGroup(
                engine,
                partial(_read_one, with_balance=with_balance),
                partial(asyncpg_sessions.read_many, with_balance=with_balance),
                _itself,
            )
            for with_balance in (False, True)
        }
        self._saves: dict[tuple[str, ...], StatementGroup[Read, bool]] = {}
        self._settles: dict[tuple[tuple[str, ...], Shape], StatementGroup[Settling, bool]] = {}

    async def read(self, key: Key, with_balance: bool = False) -> Read | None:
        """The session with usage and gaps, and its Version (`with_balance`: with its subject's
        balance). Its gaps are found apart, on a connection of its own: that statement is the
        session's alone, and whatever becomes of it must not become the group's."""
        read = await self._reads[with_balance](key)
        if read is not None:
            await self.add_gaps(read[0])
        return read

    async def add_gaps(self, session: Session) -> None:
        """Give the session its gaps, if it has any, found on a connection of its own."""
        if asyncpg_sessions.may_have_gaps(session):
            async with asyncpg_connection(self._engine) as driver:
                await asyncpg_sessions.add_gaps(driver, session)

    def save(self, columns: Sequence[str]) -> StatementGroup[Read, bool]:
        """The writes of these columns (and no usage) guarded by what was read. Even alone,
        each is written as a group's are: one another writer holds locked is not written but
        left to the caller, not waited for while others wait behind it."""
        key = tuple(columns)
        if key not in self._saves:
            many = partial(_save_many, columns=key)
            self._saves[key] = StatementGroup(
                self._engine, partial(_alone, many=many), many, _read_key
            )
        return self._saves[key]

    def settle(self, columns: Sequence[str], shape: Shape) -> StatementGroup[Settling, bool]:
        """As `save`, for closes that settle their first charge with records of this shape,
        read with their subjects' balances: written only if also the subject's ledger is free
        and its balance still the one read. Two of one subject never share a group: each would
        be guarded by the balance before the other's charge."""
        key = (tuple(columns), shape)
        if key not in self._settles:
            many = partial(_settle_many, columns=key[0])
            self._settles[key] = StatementGroup(
                self._engine, partial(_alone, many=many), many, _subject_key
            )
        return self._settles[key]


async def _read_one(driver: Driver, key: Key, with_balance: bool) -> Read | None:
    return await asyncpg_sessions.read_versioned(driver, *key, with_balance, gaps=False)


async def _alone(
    driver: Driver,
    member: Member,
    many: Callable[[Driver, Sequence[Member]], Awaitable[Sequence[bool]]],
) -> bool:
    (written,) = await many(driver, [member])
    return written


async def _save_many(driver: Driver, reads: Sequence[Read], columns: tuple[str, ...]) -> list[bool]:
    return await asyncpg_sessions.save_many_unless_changed(driver, reads, columns)


async def _settle_many(
    driver: Driver, settling: Sequence[Settling], columns: tuple[str, ...]
) -> list[bool]:
    reads = [(session, version) for session, version, _ in settling]
    records = [records for _, _, records in settling]
    return await asyncpg_sessions.save_many_unless_changed(driver, reads, columns, records)


def _subject_key(settling: Settling) -> tuple[str, str | None]:
    return settling[0].tenant_id, settling[0].subject_id


def _session_key(session: Session) -> Key:
    return session.tenant_id, session.id


def _read_key(read: Read) -> Key:
    return _session_key(read[0])


def _itself(key: Key) -> Key:
    return key
