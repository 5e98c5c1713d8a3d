"""A batch of events written through asyncpg (adapters.sqlalchemy.asyncpg_statements)."""

from collections.abc import Sequence
from dataclasses import fields
from functools import cache
from typing import cast

import asyncpg
import msgspec

from adapters.sqlalchemy import asyncpg_sessions
from adapters.sqlalchemy.asyncpg_statements import Driver, json_rows, unnest
from adapters.sqlalchemy.event_batches import BatchWriter, Key, UnlockedBatchWriter
from adapters.sqlalchemy.remembered_sessions import RememberedSessions
from adapters.sqlalchemy.tables import events, sessions
from domain.events import Event
from domain.session import EVENT_CHANGES, Session
from domain.usage import Usage

# The rows go as the events encode (msgspec, dataclass fields by name; a decimal quantity as
# a string, as quantities.to_json writes it): each field is the column of its name.
EVENT_COLUMNS = tuple(field.name for field in fields(Event))


@cache
def insert_counted() -> str:
    """The events as one JSON document, then how many there are. Their usage is counted, as
    asyncpg_sessions.save does it, only if all of them were stored; when they were not, the keys
    of those that were. (Built on first use, not at import: so that a mutation run, whose
    processes fork from one that imported the code, sees its builders' mutants.)"""
    document = asyncpg_sessions.after_save_values(EVENT_CHANGES)
    how_many = f"${document + 1}"
    all_stored = f"(SELECT count(*) FROM stored) = {how_many}"
    return (
        f"WITH stored AS (INSERT INTO events (tenant_id, {', '.join(EVENT_COLUMNS)})"
        f" SELECT $1, r.* FROM {json_rows(events, EVENT_COLUMNS, document)}"
        " ON CONFLICT DO NOTHING RETURNING session_id, sequence_no),"
        f" {asyncpg_sessions.save_if(EVENT_CHANGES, all_stored)}"
        " SELECT array_agg(session_id), array_agg(sequence_no) FROM stored"
        f" HAVING count(*) <> {how_many}"
    )


@cache
def insert_counted_unless_changed() -> str:
    """`insert_counted`'s writes, only if every session of the batch is free and as read (their
    ids and Versions' parts as arrays after the document, then how many there are): no other
    writer holds them, so none can be storing their events either. The events are inserted
    without ON CONFLICT: one stored before fails the whole statement, counts and all. Answers
    whether it wrote, and the ids of the sessions written with their rows' new versions."""
    document = asyncpg_sessions.after_save_values(EVENT_CHANGES)
    first = document + 1
    all_free = f"(SELECT count(*) FROM free) = ${first + 4}"
    read = unnest(
        sessions,
        ("id",),
        first,
        [f"${first + 1}::bigint[]", f"${first + 2}::bigint[]", f"${first + 3}::numeric[]"],
    )
    return (
        f"WITH v AS (SELECT $1::varchar AS tenant_id, * FROM {read}"
        " AS v(id, row_version, meters, nanos)),"
        f" {asyncpg_sessions.free_as_read(asyncpg_sessions.UNCHANGED)},"
        f" stored AS (INSERT INTO events (tenant_id, {', '.join(EVENT_COLUMNS)})"
        f" SELECT $1, r.* FROM {json_rows(events, EVENT_COLUMNS, document)} WHERE {all_free}),"
        f" {asyncpg_sessions.save_if(EVENT_CHANGES, all_free, asyncpg_sessions.NEW_VERSIONS)}"
        f" SELECT {all_free}, ARRAY(SELECT id FROM updated), ARRAY(SELECT row_version FROM updated)"
    )


STORED_EVENTS = (
    "SELECT session_id, sequence_no FROM events WHERE tenant_id = $1"
    f" AND (session_id, sequence_no) IN (SELECT * FROM {unnest(events, EVENT_COLUMNS[:2], 2)})"
)


class AsyncpgBatchWriter(BatchWriter, UnlockedBatchWriter):
    """Both ways: in a transaction (BatchWriter), and without one (UnlockedBatchWriter). Given
    `remembered`, the unlocked way remembers the sessions it writes and, with `recall`, starts
    from the sessions as this process last wrote them when it remembers every one of the
    batch's (`recalled`), and tells it of a write refused on them."""

    def __init__(
        self,
        driver: Driver,
        tenant_id: str,
        remembered: RememberedSessions | None = None,
        recall: bool = True,
    ) -> None:
        self._driver = driver
        self._tenant_id = tenant_id
        self._remembered = remembered
        self._recall = recall
        self.recalled = False

    async def lock_sessions(self, session_ids: set[str], metered: set[str]) -> dict[str, Session]:
        ids = sorted(session_ids)
        return await asyncpg_sessions.lock(self._driver, self._tenant_id, ids, metered, gaps=False)

    async def insert_counted(
        self, batch: list[Event], usage: dict[str, Usage], changed: list[Session]
    ) -> list[Key] | None:
        counted = asyncpg_sessions.save_values(changed, EVENT_CHANGES, usage)
        document = msgspec.json.encode(batch).decode()
        stored = await self._driver.fetchrow(
            insert_counted(), self._tenant_id, *counted, document, len(batch)
        )
        return None if stored is None else list(zip(stored[0] or (), stored[1] or (), strict=True))

    async def stored(self, keys: list[Key]) -> set[Key]:
        session_ids, numbers = zip(*keys, strict=True)
        rows = await self._driver.fetch(STORED_EVENTS, self._tenant_id, session_ids, numbers)
        return {(row[0], row[1]) for row in rows}

    async def count(self, usage: dict[str, Usage], changed: list[Session]) -> None:
        await asyncpg_sessions.save(self._driver, changed, EVENT_CHANGES, usage)

    async def read_sessions(self, session_ids: Sequence[str]) -> dict[str, tuple[Session, object]]:
        if self._remembered is not None and self._recall:
            recalled = self._remembered.recall(self._tenant_id, session_ids)
            if recalled is not None:
                self.recalled = True
                return recalled
        keys = [(self._tenant_id, session_id) for session_id in session_ids]
        read = await asyncpg_sessions.read_many(self._driver, keys) if keys else []
        return {found[0].id: found for found in read if found is not None}

    async def insert_counted_unless_changed(
        self,
        batch: list[Event],
        usage: dict[str, Usage],
        changed: list[Session],
        read: dict[str, tuple[Session, object]],
    ) -> bool:
        counted = asyncpg_sessions.save_values(changed, EVENT_CHANGES, usage)
        document = msgspec.json.encode(batch).decode()
        versioned = cast(list[tuple[Session, asyncpg_sessions.Version]], list(read.values()))
        try:
            wrote, ids, rows = await self._driver.fetchrow(
                insert_counted_unless_changed(),
                self._tenant_id,
                *counted,
                document,
                [session.id for session, _ in versioned],
                *asyncpg_sessions.versions(versioned),
                len(versioned),
            )
        except asyncpg.UniqueViolationError:  # an event stored before: the locked way tells
            wrote = False
        if self._remembered is not None:
            if wrote:
                # The sessions as this write left them (counted into, in place, since read).
                new_rows = dict(zip(ids, rows, strict=True))
                self._remembered.keep(
                    self._tenant_id,
                    (
                        (s, asyncpg_sessions.after_save(v, s, usage.get(s.id, {}), new_rows[s.id]))
                        for s, v in versioned
                        if s.id in new_rows
                    ),
                    self.recalled,
                )
            elif self.recalled:
                self._remembered.refused(self._tenant_id, {s.id: v for s, v in versioned})
        return bool(wrote)
