"""The LiveKit webhook's rows written through asyncpg (adapters.sqlalchemy.asyncpg_statements):
each step one statement, atomic by itself, so that a webhook waits for no BEGIN and COMMIT."""

from datetime import datetime

from adapters.sqlalchemy.asyncpg_statements import Driver, unnest
from adapters.sqlalchemy.engine import json_text
from adapters.sqlalchemy.livekit_steps import LEFT_TO_SETTLE_AGAIN, LiveKitRows, Stored
from adapters.sqlalchemy.quantities import to_json, to_nanos
from adapters.sqlalchemy.tables import events
from domain.livekit import TrackChange, TrackReport, track_events
from domain.session import ChargeState

SEEN = "SELECT 1 FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2"
RECORD = (
    "INSERT INTO webhook_deliveries (tenant_id, id, received_at) VALUES ($1, $2, $3)"
    " ON CONFLICT DO NOTHING"
)
FINISHED_AT = "SELECT finished_at FROM finished_rooms WHERE tenant_id = $1 AND room_sid = $2"
# Stored unless it is, and returned as it is either way: DO UPDATE, unlike DO NOTHING, returns a
# row stored by a transaction that committed after this statement began. A track of a session
# that does not exist selects no row: nothing is stored, nothing returned. (Sessions are never
# deleted while their tracks are reported.)
TRACK = (
    "INSERT INTO track_intervals (tenant_id, session_id, track_sid, meter, counted)"
    " SELECT tenant_id, id, $3, $4, false FROM sessions WHERE tenant_id = $1 AND id = $2"
    " ON CONFLICT (tenant_id, session_id, track_sid) DO UPDATE SET meter = track_intervals.meter"
    " RETURNING meter, published_at, unpublished_at, end_from_stay, counted"
)
EVENT_COLUMNS = ("type", "at", "category", "label", "data", "meters")
_EVENTS = ", ".join(EVENT_COLUMNS)
# All or nothing, in one statement: the session locked first (every track report takes the
# session's row before the track's), and only while it has not ended or ends at $20 when given
# (an end from the stay: a stale ender's changes nothing); the track, if it is still as its
# report was decided on (a concurrent report's change makes the UPDATE match no row, and the
# rest follows it); its new ends as events, numbered after the session's highest sequence
# number ($12 of them, the sequence numbers given counting from 1); its seconds ($19, or NULL)
# added to its meter. Answers whether the track and the session were found as required.
# Its seconds counted into an ended session, charged or pending.
_SETTLE_AGAIN = f"$19::bigint IS NOT NULL AND {LEFT_TO_SETTLE_AGAIN}"
SAVE_TRACK = (
    "WITH stay AS (SELECT FROM sessions WHERE tenant_id = $1 AND id = $2"
    " AND ($20::timestamptz IS NULL OR ended_at IS NULL OR ended_at = $20) FOR UPDATE),"
    " track AS (UPDATE track_intervals SET published_at = $4, unpublished_at = $5,"
    " end_from_stay = $6, counted = $7 WHERE tenant_id = $1 AND session_id = $2"
    " AND track_sid = $3 AND published_at IS NOT DISTINCT FROM $8::timestamptz"
    " AND unpublished_at IS NOT DISTINCT FROM $9::timestamptz AND end_from_stay = $10"
    " AND counted = $11 AND EXISTS (SELECT FROM stay) RETURNING meter),"
    # One UPDATE of the session (PostgreSQL applies only one of two updates of a row in one
    # statement), made whenever seconds are counted: its new row version tells a writer that
    # read the session before them (SqlSessionRepository._unless_changed).
    " numbered AS (UPDATE sessions SET max_sequence_no = max_sequence_no + $12::int,"
    " event_count = event_count + $12::int,"
    f" charge_revision = charge_revision + CASE WHEN {_SETTLE_AGAIN} THEN 1 ELSE 0 END,"
    f" charge_state = CASE WHEN {_SETTLE_AGAIN} THEN '{ChargeState.PENDING}'"
    " ELSE charge_state END WHERE tenant_id = $1 AND id = $2"
    " AND ($12::int > 0 OR $19::bigint IS NOT NULL)"
    " AND EXISTS (SELECT FROM track) RETURNING max_sequence_no - $12::int AS highest),"
    f" appended AS (INSERT INTO events (tenant_id, session_id, sequence_no, {_EVENTS})"
    f" SELECT $1, $2, highest + n, {_EVENTS} FROM numbered,"
    f" {unnest(events, EVENT_COLUMNS, 13)} WITH ORDINALITY AS e({_EVENTS}, n)),"
    " added AS (INSERT INTO session_meters (tenant_id, session_id, meter, quantity_nanos,"
    " is_decimal) SELECT $1, $2, meter, $19::bigint, false FROM track WHERE $19 IS NOT NULL"
    " ON CONFLICT (tenant_id, session_id, meter) DO UPDATE"
    " SET quantity_nanos = session_meters.quantity_nanos + excluded.quantity_nanos)"
    " SELECT (SELECT count(*) FROM track), (SELECT count(*) FROM stay)"
)
TRACKS_ENDING_WITH_STAY = (
    "SELECT track_sid, meter, published_at, unpublished_at, end_from_stay FROM track_intervals"
    " WHERE tenant_id = $1 AND session_id = $2"
    " AND published_at IS NOT NULL AND (unpublished_at IS NULL OR end_from_stay)"
    " ORDER BY track_sid"
)


class AsyncpgLiveKitRows(LiveKitRows):
    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    async def seen(self, tenant_id: str, webhook_id: str) -> bool:
        return await self._driver.fetchval(SEEN, tenant_id, webhook_id) is not None

    async def record_webhook(self, tenant_id: str, webhook_id: str, at: datetime) -> bool:
        return bool(await self._driver.execute(RECORD, tenant_id, webhook_id, at) == "INSERT 0 1")

    async def finished_at(self, tenant_id: str, room_sid: str) -> datetime | None:
        found: datetime | None = await self._driver.fetchval(FINISHED_AT, tenant_id, room_sid)
        return found

    async def track(self, tenant_id: str, session_id: str, report: TrackReport) -> Stored | None:
        key = (tenant_id, session_id, report.track_sid)
        row = await self._driver.fetchrow(TRACK, *key, report.meter)
        if row is None:
            return None
        meter, published_at, unpublished_at, end_from_stay, counted = row
        known = TrackReport(report.track_sid, meter, published_at, unpublished_at, end_from_stay)
        return known, counted

    async def save_track(
        self,
        tenant_id: str,
        session_id: str,
        stored: Stored,
        change: TrackChange,
        required: datetime | None,
    ) -> bool | None:
        (known, counted), track = stored, change.track
        # Numbered from 1 here; the statement adds the session's highest sequence number.
        ends = track_events(session_id, 1, track.meter, track.track_sid, change.ends)
        saved, found = await self._driver.fetchrow(
            SAVE_TRACK,
            tenant_id,
            session_id,
            track.track_sid,
            track.published_at,
            track.unpublished_at,
            track.end_from_stay,
            change.counted,
            known.published_at,
            known.unpublished_at,
            known.end_from_stay,
            counted,
            len(ends),
            [e.type for e in ends],
            [e.at for e in ends],
            [e.category for e in ends],
            [e.label for e in ends],
            [json_text(e.data) for e in ends],
            [json_text(to_json(e.meters)) for e in ends],
            None if change.seconds is None else to_nanos(change.seconds),
            required,
        )
        return bool(saved) if found else None

    async def tracks_ending_with_stay(self, tenant_id: str, session_id: str) -> list[TrackReport]:
        rows = await self._driver.fetch(TRACKS_ENDING_WITH_STAY, tenant_id, session_id)
        return [TrackReport(*row) for row in rows]
