"""The LiveKit webhook's storage steps on either SQL engine (adapters.sqlalchemy.driver_steps):
the webhook log's, the track log's and a finished room's read, written once against
LiveKitRows, which asyncpg_livekit and sqlite_livekit provide. Every webhook runs several of
them; through SQLAlchemy Core, its work per statement cost more than the database did."""

from datetime import datetime
from typing import Protocol

from domain.livekit import TrackChange, TrackReport, report_track, stays_end_required
from domain.session import ChargeState, SessionStatus

Stored = tuple[TrackReport, bool]  # a track as stored, and whether its seconds are counted

# domain.session.settled_again_on_usage in SQL: a session whose usage a track's seconds change
# that has ended and is charged or pending is left pending again, under a new revision, in the
# track's own step (TrackLog.record).
LEFT_TO_SETTLE_AGAIN = (
    f"status <> '{SessionStatus.ACTIVE}'"
    f" AND charge_state IN ('{ChargeState.CHARGED}', '{ChargeState.PENDING}')"
)


class LiveKitRows(Protocol):
    async def seen(self, tenant_id: str, webhook_id: str) -> bool: ...

    async def record_webhook(self, tenant_id: str, webhook_id: str, at: datetime) -> bool:
        """WebhookLog.record."""
        ...

    async def finished_at(self, tenant_id: str, room_sid: str) -> datetime | None:
        """FinishedRooms.finished_at (read for every new stay)."""
        ...

    async def track(self, tenant_id: str, session_id: str, report: TrackReport) -> Stored | None:
        """The track as stored; stored first (no end known, not counted) when new. None, and
        nothing stored, when the session does not exist."""
        ...

    async def save_track(
        self,
        tenant_id: str,
        session_id: str,
        stored: Stored,
        change: TrackChange,
        required: datetime | None,
    ) -> bool | None:
        """Atomically, if the track is still as `stored` and its session has not ended, or ends
        at `required` when given: write the track as `change` leaves it, append its new ends to
        the session's events after its highest sequence number, and add its seconds to the
        session's usage, leaving an ended session to be settled again (LEFT_TO_SETTLE_AGAIN).
        Nothing written, and False if the track changed since, None if the session ends
        otherwise."""
        ...

    async def tracks_ending_with_stay(
        self, tenant_id: str, session_id: str
    ) -> list[TrackReport]: ...


async def record_track(
    rows: LiveKitRows, tenant_id: str, session_id: str, report: TrackReport
) -> bool:
    """TrackLog.record, without a transaction around it: a report decided on a track that
    another changed meanwhile writes nothing and is decided again on what that one left, so
    only one report finds an end new, and only the one that completes the track counts it. (A
    track changes a few times: each end once, counted once, and its end again as often as its
    stay's enders race, so this ends.)"""
    while True:
        stored = await rows.track(tenant_id, session_id, report)
        if stored is None:
            return False  # no session, no tracks: nothing kept
        change = report_track(*stored, report)
        if not change.changed:
            return False
        saved = await rows.save_track(
            tenant_id, session_id, stored, change, stays_end_required(report)
        )
        if saved is None:
            return False  # a stale ender's: its stay ends otherwise now
        if saved:
            return change.seconds is not None
