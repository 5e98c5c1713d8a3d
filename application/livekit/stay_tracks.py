"""A LiveKit stay's tracks: what LiveKit reports of them reaches the stay's usage, and those
without their own end take the stay's, whoever ended the stay (a webhook, reconciliation, the
reaper's sweep, a client's exit through RecordExit)."""

from datetime import datetime

from application.credits.deduct_credits import DeductCredits
from application.livekit.ports import TrackLog
from application.rollups.rollup_rewinds import RollupRewinds
from application.sessions.ports import EndsWithSession, SessionRepository
from domain.livekit import KIND, TrackReport
from domain.session import Session


class StayTracks(EndsWithSession):
    def __init__(
        self,
        tracks: TrackLog,
        sessions: SessionRepository,
        deduct_credits: DeductCredits,
        rewinds: RollupRewinds,
    ) -> None:
        self._tracks = tracks
        self._sessions = sessions
        self._deduct_credits = deduct_credits
        self._rewinds = rewinds

    async def follow(self, session: Session) -> Session | None:
        # The stay's tracks take the end it kept, which another ender may have decided (the
        # time an ender asked for is then not the stay's), and a track whose `track_published`
        # was handled while the stay ended was not open when its ender looked. That webhook
        # looks for the stay's end only after recording the track, so one of the two sees the
        # other: this look, made after the exit, or that one. If another ender's exit has
        # corrected the end since (a `left` replacing a guess), the store keeps none of these
        # (TrackLog.record), and that ender's own look ends the tracks at the end it left.
        if session.kind != KIND or session.ended_at is None:
            return None
        return await self.follow_end(session.tenant_id, session.id, session.ended_at)

    async def record_track(
        self, tenant_id: str, session_id: str, report: TrackReport
    ) -> Session | None:
        """Merge a track report; seconds that land on a stay that has ended (its `left` came
        first, or ended it meanwhile) change its price, so it is settled again (the track's
        step left it pending: TrackLog.record), and the hours of a stay rolled up already are
        rolled up again. The stay as settled then, if its usage changed (and it still exists)."""
        if not await self._tracks.record(tenant_id, session_id, report):
            return None
        session = await self._sessions.get(tenant_id, session_id)
        if session is None:
            return None  # erased meanwhile
        await self._rewinds.changed_since(tenant_id, session.started_at)
        return await self._deduct_credits(session)

    async def end_moved(self, stay: Session) -> None:
        """A sign of life may have moved the ended stay's guessed end: its tracks follow it,
        and its hours are rolled up again."""
        assert stay.ended_at is not None, "an ended stay"
        await self._rewinds.changed_since(stay.tenant_id, stay.started_at)
        await self.follow_end(stay.tenant_id, stay.id, stay.ended_at)

    async def follow_end(
        self, tenant_id: str, session_id: str, ended_at: datetime
    ) -> Session | None:
        """The tracks that ended with the stay (or are still open) take its end, `ended_at`
        (each track whose seconds change sends rollups back: record_track); the stay as
        settled last, if its usage changed."""
        settled = None
        for track in await self._tracks.tracks_ending_with_stay(tenant_id, session_id):
            if track.unpublished_at != ended_at:
                settled = await self.end_track(tenant_id, session_id, track, ended_at) or settled
        return settled

    async def end_track(
        self, tenant_id: str, session_id: str, track: TrackReport, at: datetime
    ) -> Session | None:
        """End a track with its stay, at `at`, unless LiveKit reports its own end; the stay as
        settled then, if its usage changed."""
        ended = TrackReport(track.track_sid, track.meter, unpublished_at=at, end_from_stay=True)
        return await self.record_track(tenant_id, session_id, ended)
