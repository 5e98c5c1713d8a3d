"""A batch of events written with sqlite3 on SQLite's thread
(adapters.sqlalchemy.sqlite_statements)."""

import sqlite3

from adapters.sqlalchemy import sqlite_sessions
from adapters.sqlalchemy.engine import json_text
from adapters.sqlalchemy.event_batches import BatchWriter, Key
from adapters.sqlalchemy.quantities import to_json
from adapters.sqlalchemy.sqlite_statements import instant
from domain.events import Event
from domain.session import EVENT_CHANGES, Session
from domain.usage import Usage

INSERT_EVENT = (
    "INSERT INTO events (tenant_id, session_id, sequence_no, type, at, category, label, data,"
    " meters) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
STORED_EVENT = "SELECT 1 FROM events WHERE tenant_id = ? AND session_id = ? AND sequence_no = ?"


class SqliteBatchWriter(BatchWriter):
    """Its steps never wait: they run with sqlite3 on SQLite's thread (run_unsuspended)."""

    def __init__(self, connection: sqlite3.Connection, tenant_id: str) -> None:
        self._connection = connection
        self._tenant_id = tenant_id

    async def lock_sessions(self, session_ids: set[str], metered: set[str]) -> dict[str, Session]:
        ids = sorted(session_ids)
        return sqlite_sessions.read(self._connection, self._tenant_id, ids, gaps=False)

    async def insert(self, batch: list[Event]) -> list[Key]:
        """Insert the events not stored yet; the keys of those this call stored."""
        stored = []
        for e in batch:
            row = (self._tenant_id, e.session_id, e.sequence_no, e.type, instant(e.at))
            more = (e.category, e.label, json_text(e.data), json_text(to_json(e.meters)))
            if self._connection.execute(INSERT_EVENT, row + more).rowcount == 1:
                stored.append((e.session_id, e.sequence_no))
        return stored

    async def insert_counted(
        self, batch: list[Event], usage: dict[str, Usage], changed: list[Session]
    ) -> list[Key] | None:
        stored = await self.insert(batch)
        if len(stored) < len(batch):
            return stored
        await self.count(usage, changed)
        return None

    async def stored(self, keys: list[Key]) -> set[Key]:
        find = self._connection.execute
        return {key for key in keys if find(STORED_EVENT, (self._tenant_id, *key)).fetchone()}

    async def count(self, usage: dict[str, Usage], changed: list[Session]) -> None:
        sqlite_sessions.save(self._connection, changed, EVENT_CHANGES, usage)
