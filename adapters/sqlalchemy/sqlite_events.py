"""A batch of events written with sqlite3 on SQLite's thread
(adapters.sqlalchemy.sqlite_statements)."""

import sqlite3

import msgspec

from adapters.sqlalchemy import sqlite_sessions
from adapters.sqlalchemy.event_batches import BatchWriter, Key
from domain.events import Event
from domain.session import EVENT_CHANGES, Session
from domain.usage import Usage

# The events go as one JSON document, as they encode (msgspec: a decimal quantity as a string,
# as quantities.to_json writes it), and SQLite makes their rows: a row built in Python and a
# statement run for each event cost the writers' thread more than SQLite's own work (batches of
# 100: 326 a second against 253, benchmarks/against.py). The instant is kept as SQLAlchemy binds
# it (tables.UTCDateTime: naive UTC text to the microsecond; the events' are to the millisecond),
# data and meters as their JSON text (`->` gives a member's text as written), no data as SQL
# NULL. (`WHERE true`: SQLite's grammar, for an upsert from a SELECT.)
INSERT_EVENTS = (
    "INSERT INTO events (tenant_id, session_id, sequence_no, type, at, category, label, data,"
    " meters) SELECT ?, e.value->>'session_id', e.value->>'sequence_no', e.value->>'type',"
    " strftime('%Y-%m-%d %H:%M:%f', e.value->>'at') || '000', e.value->>'category',"
    " e.value->>'label', nullif(e.value->'data', 'null'), e.value->'meters'"
    " FROM json_each(?) AS e WHERE true ON CONFLICT DO NOTHING"
    " RETURNING session_id, sequence_no"
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
        document = msgspec.json.encode(batch).decode()
        return self._connection.execute(INSERT_EVENTS, (self._tenant_id, document)).fetchall()

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
