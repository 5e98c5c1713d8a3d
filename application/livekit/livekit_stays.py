"""How a LiveKit stay's tracks reach its usage and how a stay ends, whoever noticed it (a
webhook, reconciliation): its tracks still published end with it, then the stay exits through
RecordExit (closed once, charged once)."""

from datetime import datetime

from application.credits.deduct_credits import DeductCredits
from application.livekit.ports import TrackLog
from application.rollups.rollup_rewinds import RollupRewinds
from application.sessions.ports import SessionRepository
from application.sessions.record_exit import RecordedExit, RecordExit, RecordExitCommand
from domain.livekit import TrackReport
from domain.session import ROOM_FINISHED, Session, SessionStatus
from domain.tenants import TenantSettings


class LiveKitStays:
    def __init__(
        self,
        tracks: TrackLog,
        sessions: SessionRepository,
        record_exit: RecordExit,
        deduct_credits: DeductCredits,
        rewinds: RollupRewinds,
    ) -> None:
        self._tracks = tracks
        self._sessions = sessions
        self._record_exit = record_exit
        self._deduct_credits = deduct_credits
        self._rewinds = rewinds

    async def record_track(self, tenant_id: str, session_id: str, report: TrackReport) -> None:
        """Merge a track report; seconds that land on a stay that has ended (its `left` came
        first, or ended it meanwhile) change its price, so it is settled again (the track's
        step left it pending: TrackLog.record), and the hours of a stay rolled up already are
        rolled up again."""
        if await self._tracks.record(tenant_id, session_id, report):
            session = await self._sessions.get(tenant_id, session_id)
            if session is None:
                return  # erased meanwhile
            await self._rewinds.changed_since(tenant_id, session.started_at)
            await self._deduct_credits(session)

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
                await self.end_track(tenant_id, session_id, track, at)
        command = RecordExitCommand(
            tenant_id,
            session_id,
            at=at,
            status=status,
            reason=reason,
            settings=settings or TenantSettings(),
            from_server=True,
        )
        exited = await self._record_exit(command)
        # The stay's tracks take the end it kept, which another ender may have decided (this
        # one's time above was then not the stay's), and a track whose `track_published` was
        # handled while the stay ended was not open above. That webhook looks for the stay's end
        # only after recording the track, so one of the two sees the other: this look, made
        # after the exit, or that one. If another ender's exit has corrected the end since (a
        # `left` replacing a guess), the store keeps none of these (TrackLog.record), and that
        # ender's own look ends the tracks at the end it left.
        await self.follow_end(tenant_id, session_id, exited.session.ended_at or at)
        return exited

    async def end_with_room(
        self, stay: Session, finished_at: datetime, settings: TenantSettings
    ) -> RecordedExit:
        """The stay's room finished: it ends then, or when it began if it began later (a
        stay's clock and its room's are LiveKit's whole seconds), reason room_finished."""
        at = max(finished_at, stay.started_at)
        return await self.end(stay.tenant_id, stay.id, at, reason=ROOM_FINISHED, settings=settings)

    async def end_moved(self, stay: Session) -> None:
        """A sign of life may have moved the ended stay's guessed end: its tracks follow it,
        and its hours are rolled up again."""
        assert stay.ended_at is not None, "an ended stay"
        await self._rewinds.changed_since(stay.tenant_id, stay.started_at)
        await self.follow_end(stay.tenant_id, stay.id, stay.ended_at)

    async def follow_end(self, tenant_id: str, session_id: str, ended_at: datetime) -> None:
        """The tracks that ended with the stay (or are still open) take its end, `ended_at`
        (each track whose seconds change sends rollups back: record_track)."""
        for track in await self._tracks.tracks_ending_with_stay(tenant_id, session_id):
            if track.unpublished_at != ended_at:
                await self.end_track(tenant_id, session_id, track, ended_at)

    async def end_track(
        self, tenant_id: str, session_id: str, track: TrackReport, at: datetime
    ) -> None:
        """End a track with its stay, at `at`, unless LiveKit reports its own end."""
        ended = TrackReport(track.track_sid, track.meter, unpublished_at=at, end_from_stay=True)
        await self.record_track(tenant_id, session_id, ended)
