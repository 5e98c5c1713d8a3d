"""A LiveKit server's signed webhook: participants' stays become sessions, tracks add usage."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from application.livekit.account_book import LiveKitAccountBook
from application.livekit.livekit_stays import LiveKitStays
from application.livekit.ports import FinishedRooms, WebhookLog, WebhookVerifier
from application.livekit.stay_tracks import StayTracks
from application.ports import Clock
from application.rollups.rollup_rewinds import RollupRewinds
from application.sessions.ports import SessionFilter, SessionRepository
from application.sessions.record_exit import RecordedExit
from application.tenants.ports import TenantRepository
from domain.errors import NotFound, Unauthorized
from domain.livekit import KIND, TRACK_METERS, LiveKitAccount, RoomEvent, RoomEventKind, TrackReport
from domain.session import Session, SessionRequest, SessionStatus
from domain.tenants import TenantSettings

EXIT_STATUS: dict[str, SessionStatus] = {
    RoomEventKind.PARTICIPANT_LEFT: SessionStatus.COMPLETED,
    RoomEventKind.PARTICIPANT_CONNECTION_ABORTED: SessionStatus.ABANDONED,
}
ROOM_PAGE = 500


@dataclass(frozen=True)
class ReceiveLiveKitWebhookCommand:
    body: str  # the raw body, exactly as signed
    token: str  # the Authorization header's signed token


@dataclass(frozen=True)
class ReceivedWebhook:
    """A verified webhook and what became of it."""

    tenant_id: str  # the tenant of the API key that signed it
    webhook_id: str
    kind: str  # a RoomEventKind, or another event this service ignores
    redelivered: bool  # handled before (so nothing changed, every step being idempotent)
    started: bool = False  # it opened a stay
    ended: tuple[RecordedExit, ...] = ()  # the stays it closed


class ReceiveLiveKitWebhook:
    """A LiveKit server reports what happened in its rooms; participants' stays become sessions
    of kind `livekit`, and the time their tracks were published adds to their usage (video,
    screen share, audio). `participant_left` ends a stay `completed`,
    `participant_connection_aborted` `abandoned`, and `room_finished` ends every stay still open
    in the room, and any stored after it (FinishedRooms); tracks still published end with their
    stay, which is then charged like any exit (RecordExit). Every webhook of a stay is a sign
    of life (`Session.sign_of_life`): LiveKit sends no heartbeat.

    Webhooks are redelivered and reordered, so every step is idempotent: a stay's session id
    comes from the room and participant sids (`domain.livekit.session_id_of`), a join is
    recorded by the first webhook of the stay to arrive, whichever it is (each carries when the
    participant joined), whatever the subject's plan allows, a track's ends count once each,
    and a second exit is a replay: a redelivered webhook is handled again and changes nothing
    (handled webhook ids are remembered for 30 days, to tell it apart). Times are when things
    happened on the LiveKit server. Unauthorized unless the webhook is signed, for exactly this
    body, with a registered API key."""

    def __init__(
        self,
        verifier: WebhookVerifier,
        accounts: LiveKitAccountBook,
        webhooks: WebhookLog,
        sessions: SessionRepository,
        stays: LiveKitStays,
        stay_tracks: StayTracks,
        finished_rooms: FinishedRooms,
        tenants: TenantRepository,  # remembered briefly (TenantBook): read for settings only
        rewinds: RollupRewinds,
        clock: Clock,
    ) -> None:
        self._rewinds = rewinds
        self._tenants = tenants
        self._verifier = verifier
        self._accounts = accounts
        self._webhooks = webhooks
        self._sessions = sessions
        self._stays = stays
        self._stay_tracks = stay_tracks
        self._finished_rooms = finished_rooms
        self._clock = clock

    async def __call__(self, command: ReceiveLiveKitWebhookCommand) -> ReceivedWebhook:
        event, account = await self._verified(command)
        tenant_id = account.tenant_id
        tenant = await self._tenants.get(tenant_id)
        settings = TenantSettings() if tenant is None else tenant.settings
        started, ended = False, []
        if event.kind == RoomEventKind.PARTICIPANT_JOINED:
            started = await self._joined(tenant_id, event, settings)
        elif event.kind in EXIT_STATUS:
            # A `left` may come first, or alone (it ends the stay itself, finished room or not).
            started = await self._joined(tenant_id, event, settings, ends_with_room=False)
            status = EXIT_STATUS[event.kind]
            ended.append(await self._left(tenant_id, event.session_id, event, status, settings))
        elif event.kind == RoomEventKind.ROOM_FINISHED:
            ended = await self._room_finished(tenant_id, event, settings)
        elif event.kind in (RoomEventKind.TRACK_PUBLISHED, RoomEventKind.TRACK_UNPUBLISHED):
            started = await self._joined(tenant_id, event, settings)
            await self._track(tenant_id, event)
        # Recorded last: a webhook that failed halfway is handled again when redelivered.
        new = await self._webhooks.record(tenant_id, event.id, self._clock.now())
        closed = tuple(stay for stay in ended if stay.closed)
        return ReceivedWebhook(tenant_id, event.id, event.kind, not new, started, closed)

    async def _verified(
        self, command: ReceiveLiveKitWebhookCommand
    ) -> tuple[RoomEvent, LiveKitAccount]:
        api_key = self._verifier.issuer(command.token)
        account = None if api_key is None else await self._accounts.get(api_key)
        if api_key is None or account is None:
            raise Unauthorized("the webhook is not signed with a registered LiveKit API key")
        try:
            return self._verifier.verify(command.body, command.token, account), account
        except Unauthorized:
            # The account was remembered: its secret may have been replaced since, elsewhere.
            stored = await self._accounts.stored(api_key)
            if stored is None or stored == account:
                raise
            return self._verifier.verify(command.body, command.token, stored), stored

    async def _joined(
        self,
        tenant_id: str,
        event: RoomEvent,
        settings: TenantSettings,
        ends_with_room: bool = True,
    ) -> bool:
        """Open the participant's stay unless it is open; whether this opened it. A stay opened
        in a room that finished ends with it, unless `ends_with_room` is False."""
        if event.participant_sid is None or event.identity is None:
            return False
        request = SessionRequest(
            kind=KIND,
            resource_id=event.room_name,
            subject_id=event.identity,
            started_at=event.joined_at or event.created_at,
            attributes={"room_sid": event.room_sid, "participant_sid": event.participant_sid},
        )
        now = self._clock.now()
        window = settings.late_data_window
        session = Session.start(tenant_id, event.session_id, request, now)
        # LiveKit sends no heartbeats: every webhook of the stay is its sign of life (a new
        # stay is stored with it already).
        if event.kind != RoomEventKind.PARTICIPANT_JOINED:
            # A webhook past the join mostly finds its stay stored: its sign of life, tried
            # first, is then its only write (NotFound: it overtook the join, or that was lost).
            try:
                await self._seen(tenant_id, session.id, event.created_at, now, window)
                return False
            except NotFound:
                pass
        session.sign_of_life(event.created_at, now, window)
        # The participant is in the room already: recorded whatever the plan says, once.
        added = await self._sessions.add(session)
        if added:  # its join may be long past (the join's webhook lost or late): StartSession
            await self._rewinds.changed_since(tenant_id, session.started_at)
        else:
            stored = await self._seen(tenant_id, session.id, event.created_at, now, window)
            if not stored.is_active:
                return False  # its end stands, as room_finished leaves ended stays alone
        # Its room may have finished (its join came late, or while room_finished closed the
        # room's stays). That webhook remembers the room before it looks for open stays, so
        # one of the two sees the other: this look, made after the stay is stored, or that one.
        # A stay stored already and still open looks too: its webhook may be handled again
        # because its first handling stopped before this look.
        if ends_with_room:
            finished_at = await self._finished_rooms.finished_at(tenant_id, event.room_sid)
            if finished_at is not None:
                await self._stays.end_with_room(session, finished_at, settings)
        return added

    async def _seen(
        self, tenant_id: str, session_id: str, at: datetime, now: datetime, window: timedelta
    ) -> Session:
        """The webhook as the stay's sign of life. It may move a guessed end of the stay (the
        reaper's, reconciliation's): LiveKitStays.end_moved. The stay as it is then."""
        stay = await self._sessions.sign_of_life(tenant_id, session_id, at, now, window)
        if stay.is_provisional and stay.ended_at is not None:
            await self._stay_tracks.end_moved(stay)
        return stay

    async def _left(
        self,
        tenant_id: str,
        session_id: str,
        event: RoomEvent,
        status: SessionStatus,
        settings: TenantSettings,
    ) -> RecordedExit:
        # LiveKit stamps whole seconds: a stay shorter than that must not end before it began.
        at = max(event.created_at, event.joined_at or event.created_at)
        return await self._stays.end(tenant_id, session_id, at, status, settings=settings)

    async def _track(self, tenant_id: str, event: RoomEvent) -> None:
        meter = TRACK_METERS.get(event.track_source or "")
        if meter is None or event.track_sid is None:
            return  # data tracks, screen-share audio: nothing this service meters
        published = event.kind == RoomEventKind.TRACK_PUBLISHED
        report = TrackReport(
            event.track_sid,
            meter,
            published_at=event.created_at if published else None,
            unpublished_at=None if published else event.created_at,
        )
        await self._stay_tracks.record_track(tenant_id, event.session_id, report)
        if published:
            # The stay may have ended already (its `left` overtook this webhook, or ended it
            # while the track was recorded: LiveKitStays.end looks again after its exit): the
            # track ended with it, until its own end or the stay's `left` replaces that (a
            # guessed end of the stay's: the reaper's, reconciliation's, its room's).
            session = await self._sessions.get(tenant_id, event.session_id)
            if session is not None and session.ended_at is not None:
                await self._stay_tracks.end_track(
                    tenant_id, event.session_id, report, session.ended_at
                )

    async def _room_finished(
        self, tenant_id: str, event: RoomEvent, settings: TenantSettings
    ) -> list[RecordedExit]:
        """Close every stay still open in the room (this instance of it: its sid), and remember
        that it finished for the stays stored later."""
        await self._finished_rooms.finish(tenant_id, event.room_sid, event.created_at)
        where = SessionFilter(kind=KIND, resource_id=event.room_name, status=SessionStatus.ACTIVE)
        ended = []
        while True:
            page = await self._sessions.find(tenant_id, where, ROOM_PAGE)
            open_here = [s for s in page if s.attributes.get("room_sid") == event.room_sid]
            for session in open_here:
                ended.append(await self._stays.end_with_room(session, event.created_at, settings))
            if len(page) < ROOM_PAGE or not open_here:
                return ended
