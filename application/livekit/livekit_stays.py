"""How a LiveKit stay ends, whoever noticed it (a webhook, reconciliation): its tracks still
published end with it, then the stay exits through RecordExit (closed once, charged once)."""

from datetime import datetime

from application.livekit.ports import TrackLog
from application.sessions.record_exit import RecordedExit, RecordExit, RecordExitCommand
from domain.livekit import TrackReport
from domain.session import SessionStatus
from domain.tenants import TenantSettings


async def end_stay(
    tracks: TrackLog,
    record_exit: RecordExit,
    tenant_id: str,
    session_id: str,
    at: datetime,
    status: SessionStatus = SessionStatus.COMPLETED,
    reason: str | None = None,
    settings: TenantSettings | None = None,
) -> RecordedExit:
    # Tracks first: the exit prices the stay, so its usage must already hold their seconds.
    for track in await tracks.open_tracks(tenant_id, session_id):
        ended = TrackReport(track.track_sid, track.meter, unpublished_at=at)
        await tracks.record(tenant_id, session_id, ended)
    command = RecordExitCommand(
        tenant_id,
        session_id,
        at=at,
        status=status,
        reason=reason,
        settings=settings or TenantSettings(),
        from_server=True,
    )
    return await record_exit(command)
