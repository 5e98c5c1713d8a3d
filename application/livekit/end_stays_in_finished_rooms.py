"""The reaper's sweep: stays still open in rooms that finished end with their room."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from application.livekit.livekit_stays import LiveKitStays
from application.livekit.open_stays import open_stays, refused
from application.livekit.ports import FinishedRooms
from application.sessions.ports import SessionRepository
from application.sessions.record_exit import RecordedExit
from application.tenants.tenant_jobs import TenantFailure
from domain.errors import DomainError
from domain.livekit import KIND
from domain.session import Session
from domain.tenants import Tenant


@dataclass
class Swept:
    ended: list[RecordedExit] = field(default_factory=list)  # the stays this sweep closed
    failures: list[TenantFailure] = field(default_factory=list)  # stays a rule kept open
    seen_open: set[str] = field(default_factory=set)  # the ids of the open stays it read


class EndStaysInFinishedRooms:
    """A stay stored after its room finished ends with the room once its webhook looks at the
    room (ReceiveLiveKitWebhook). A track webhook that stored the stay and stopped before that
    look, then redelivered, finds its stay stored and does not look again (a read more on every
    track webhook otherwise). Without a server URL to reconcile it, the stay never goes idle:
    it would stay open until the tenant's `max_session_seconds` closed it at a guess. So each
    of the tenant's open stays whose room (by its sid) is remembered finished ends with the
    room, charged like any exit, whatever stopped its webhook. One look at the finished rooms
    per page of open stays.

    Where the tenant's stays do go idle, the reaper's timeouts may close such a stay before a
    sweep reads it (it was stored after the sweep's page): `timed_out` then gives it its room's
    end instead of the reaper's guess, as the sweep would have."""

    def __init__(
        self, sessions: SessionRepository, finished_rooms: FinishedRooms, stays: LiveKitStays
    ) -> None:
        self._sessions = sessions
        self._finished_rooms = finished_rooms
        self._stays = stays

    async def __call__(self, tenant: Tenant) -> Swept:
        swept = Swept()
        async for page in open_stays(self._sessions, tenant.id):
            swept.seen_open.update(s.id for s in page)
            await self._end_in_finished_rooms(tenant, page, swept)
        return swept

    async def timed_out(
        self, tenant: Tenant, sessions: Sequence[Session], seen_open: Collection[str]
    ) -> Swept:
        """Sessions the reaper's timeouts have just closed, after a sweep that read `seen_open`:
        the stays among them that sweep did not read (stored since) and whose room is
        remembered finished end with their room (a guess that replaces the reaper's, once), the
        look their own webhook should have made. A stay the sweep read open, its room not
        finished then, keeps the reaper's end even if its room finished since, as room_finished
        leaves ended stays alone."""
        swept = Swept()
        stays = [s for s in sessions if s.kind == KIND and s.id not in seen_open]
        await self._end_in_finished_rooms(tenant, stays, swept)
        return swept

    async def _end_in_finished_rooms(
        self, tenant: Tenant, stays: Sequence[Session], swept: Swept
    ) -> None:
        in_rooms = [
            (s, room) for s in stays if isinstance(room := s.attributes.get("room_sid"), str)
        ]
        if not in_rooms:
            return
        finished = await self._finished_rooms.which_finished(tenant.id, {r for _, r in in_rooms})
        for stay, room in in_rooms:
            if room not in finished:
                continue
            try:
                exited = await self._stays.end_with_room(stay, finished[room], tenant.settings)
            except DomainError as error:
                swept.failures.append(refused(tenant, stay, error))
                continue
            if exited.closed:  # else another ender closed it meanwhile, or it corrected a guess
                swept.ended.append(exited)
