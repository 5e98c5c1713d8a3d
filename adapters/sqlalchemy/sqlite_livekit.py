"""The LiveKit webhook's rows written with sqlite3 on SQLite's thread
(adapters.sqlalchemy.sqlite_statements)."""

import sqlite3
from datetime import datetime

from adapters.sqlalchemy.livekit_steps import LEFT_TO_SETTLE_AGAIN, LiveKitRows, Stored
from adapters.sqlalchemy.quantities import to_nanos
from adapters.sqlalchemy.sqlite_events import SqliteBatchWriter
from adapters.sqlalchemy.sqlite_sessions import ADD_USAGE
from adapters.sqlalchemy.sqlite_statements import (
    in_transaction,
    instant,
    instant_of,
    run_unsuspended,
)
from domain.livekit import TrackChange, TrackReport, track_events
from domain.session import ChargeState

SEEN = "SELECT 1 FROM webhook_deliveries WHERE tenant_id = ? AND id = ?"
RECORD = (
    "INSERT INTO webhook_deliveries (tenant_id, id, received_at) VALUES (?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)
FINISHED_AT = "SELECT finished_at FROM finished_rooms WHERE tenant_id = ? AND room_sid = ?"
# As asyncpg_livekit's: stored unless it is, returned as it is; nothing for a session that does
# not exist.
TRACK = (
    "INSERT INTO track_intervals (tenant_id, session_id, track_sid, meter, counted)"
    " SELECT tenant_id, id, ?, ?, 0 FROM sessions WHERE tenant_id = ? AND id = ?"
    " ON CONFLICT (tenant_id, session_id, track_sid) DO UPDATE SET meter = meter"
    " RETURNING meter, published_at, unpublished_at, end_from_stay, counted"
)
# Only if the track is still as its report was decided on (another process may have changed it).
SAVE_TRACK = (
    "UPDATE track_intervals SET published_at = ?, unpublished_at = ?, end_from_stay = ?,"
    " counted = ? WHERE tenant_id = ? AND session_id = ? AND track_sid = ?"
    " AND published_at IS ? AND unpublished_at IS ? AND end_from_stay = ? AND counted = ?"
)
ENDED_AT = "SELECT ended_at FROM sessions WHERE tenant_id = ? AND id = ?"
SETTLE_AGAIN = (
    "UPDATE sessions SET charge_revision = charge_revision + 1,"
    f" charge_state = '{ChargeState.PENDING}'"
    f" WHERE tenant_id = ? AND id = ? AND {LEFT_TO_SETTLE_AGAIN}"
)
NUMBER_EVENTS = (
    "UPDATE sessions SET max_sequence_no = max_sequence_no + ?, event_count = event_count + ?"
    " WHERE tenant_id = ? AND id = ? RETURNING max_sequence_no"
)
TRACKS_ENDING_WITH_STAY = (
    "SELECT track_sid, meter, published_at, unpublished_at, end_from_stay FROM track_intervals"
    " WHERE tenant_id = ? AND session_id = ?"
    " AND published_at IS NOT NULL AND (unpublished_at IS NULL OR end_from_stay)"
    " ORDER BY track_sid"
)


class SqliteLiveKitRows(LiveKitRows):
    """Its steps never wait: they run with sqlite3 on SQLite's thread (run_unsuspended)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def seen(self, tenant_id: str, webhook_id: str) -> bool:
        return self._connection.execute(SEEN, (tenant_id, webhook_id)).fetchone() is not None

    async def record_webhook(self, tenant_id: str, webhook_id: str, at: datetime) -> bool:
        return self._connection.execute(RECORD, (tenant_id, webhook_id, instant(at))).rowcount == 1

    async def finished_at(self, tenant_id: str, room_sid: str) -> datetime | None:
        found = self._connection.execute(FINISHED_AT, (tenant_id, room_sid)).fetchone()
        return None if found is None else instant_of(found[0])

    async def track(self, tenant_id: str, session_id: str, report: TrackReport) -> Stored | None:
        values = (report.track_sid, report.meter, tenant_id, session_id)
        # Every row fetched: the statement ends, and with it the write's own transaction.
        rows = self._connection.execute(TRACK, values).fetchall()
        if not rows:
            return None
        ((meter, published_at, unpublished_at, end_from_stay, counted),) = rows
        known = TrackReport(
            report.track_sid,
            meter,
            instant_of(published_at),
            instant_of(unpublished_at),
            bool(end_from_stay),
        )
        return known, bool(counted)

    async def save_track(
        self,
        tenant_id: str,
        session_id: str,
        stored: Stored,
        change: TrackChange,
        required: datetime | None,
    ) -> bool | None:
        # One transaction, which holds the write lock: every statement of it or none.
        return in_transaction(
            self._connection,
            lambda c: _save_track(c, tenant_id, session_id, stored, change, required),
        )

    async def tracks_ending_with_stay(self, tenant_id: str, session_id: str) -> list[TrackReport]:
        rows = self._connection.execute(TRACKS_ENDING_WITH_STAY, (tenant_id, session_id))
        return [
            TrackReport(sid, meter, instant_of(start), instant_of(end), bool(from_stay))
            for sid, meter, start, end, from_stay in rows
        ]


def _save_track(
    connection: sqlite3.Connection,
    tenant_id: str,
    session_id: str,
    stored: Stored,
    change: TrackChange,
    required: datetime | None,
) -> bool | None:
    (known, counted), track, ends = stored, change.track, change.ends
    if required is not None:
        ((ended_at,),) = connection.execute(ENDED_AT, (tenant_id, session_id)).fetchall()
        if ended_at is not None and instant_of(ended_at) != required:
            return None
    key = (tenant_id, session_id, track.track_sid)
    new = (
        instant(track.published_at),
        instant(track.unpublished_at),
        track.end_from_stay,
        change.counted,
    )
    old = (
        instant(known.published_at),
        instant(known.unpublished_at),
        known.end_from_stay,
        counted,
    )
    if connection.execute(SAVE_TRACK, (*new, *key, *old)).rowcount == 0:
        return False
    if ends:
        numbers = (len(ends), len(ends), tenant_id, session_id)
        ((highest,),) = connection.execute(NUMBER_EVENTS, numbers).fetchall()
        first = highest - len(ends) + 1
        appended = track_events(session_id, first, track.meter, track.track_sid, ends)
        run_unsuspended(SqliteBatchWriter(connection, tenant_id).insert(appended))
    if change.seconds is not None:
        added = (tenant_id, session_id, track.meter, to_nanos(change.seconds), False)
        connection.execute(ADD_USAGE, added)
        connection.execute(SETTLE_AGAIN, (tenant_id, session_id))
    return True
