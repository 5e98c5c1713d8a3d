"""How a LiveKit stay ends, whoever noticed it (a webhook, reconciliation, the reaper's sweep):
its tracks still published end with it, then the stay exits through RecordExit (closed once,
charged once), whose StayTracks then give the stay's kept end to its tracks."""

from datetime import datetime

from application.livekit.ports import TrackLog
from application.livekit.stay_tracks import StayTracks
from application.sessions.record_exit import RecordedExit, RecordExit, RecordExitCommand
from domain.session import ROOM_FINISHED, Session, SessionStatus
from domain.tenants import TenantSettings


class LiveKitStays:
    def __init__(self, tracks: TrackLog, stay_tracks: StayTracks, record_exit: RecordExit) -> None:
        self._tracks = tracks
        self._stay_tracks = stay_tracks
        self._record_exit = record_exit

    async def end(
        self,
        tenant_id: str,
        session_id: str,
        at: datetime,
        status: SessionStatus = SessionStatus.COMPLETED,
        reason: str | None = None,
        settings: TenantSettings | None = None,
    ) -> RecordedExit:
        # Tracks first: the exit prices the stay, so its usage must already hold their seconds.
        for track in await self._tracks.tracks_ending_with_stay(tenant_id, session_id):
            if track.unpublished_at is None:
                await self._stay_tracks.end_track(tenant_id, session_id, track, at)
        command = RecordExitCommand(
            tenant_id,
            session_id,
            at=at,
            status=status,
            reason=reason,
            settings=settings or TenantSettings(),
            from_server=True,
        )
        # RecordExit's StayTracks then give the tracks the end the stay kept.
        return await self._record_exit(command)

    async def end_with_room(
        self, stay: Session, finished_at: datetime, settings: TenantSettings
    ) -> RecordedExit:
        """The stay's room finished: it ends then, or when it began if it began later (a
        stay's clock and its room's are LiveKit's whole seconds), reason room_finished."""
        at = max(finished_at, stay.started_at)
        return await self.end(stay.tenant_id, stay.id, at, reason=ROOM_FINISHED, settings=settings)
