"""Reconciliation: LiveKit servers are asked who is still in the rooms of open stays."""

from dataclasses import dataclass, field

from application.livekit.livekit_stays import LiveKitStays
from application.livekit.open_stays import open_stays, refused
from application.livekit.ports import LiveKitAccounts, LiveKitUnavailable, RoomService
from application.ports import Clock
from application.sessions.ports import SessionRepository
from application.tenants.ports import TenantRepository
from application.tenants.tenant_jobs import TenantFailure, chosen_tenants, each_tenant
from domain.errors import DomainError
from domain.livekit import LiveKitAccount
from domain.session import RECONCILED, Session
from domain.tenants import Tenant


@dataclass(frozen=True)
class Unreachable:
    tenant_name: str
    url: str
    reason: str  # one line for an operator


@dataclass
class Reconciled:
    tenants: int = 0  # tenants with a LiveKit server to ask
    present: int = 0  # stays whose participant is still in the room: last seen now
    ended: int = 0  # stays ended where they were last seen
    unknown: int = 0  # stays left as they were: a server of their room did not answer
    unreachable: list[Unreachable] = field(default_factory=list)
    failures: list[TenantFailure] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """What the run could not do, one line each for an operator (none: all was done)."""
        return [
            f"tenant {u.tenant_name}: LiveKit server {u.url}: {u.reason}" for u in self.unreachable
        ] + [f"tenant {f.tenant_name}: {f.error}" for f in self.failures]


class _Rooms:
    """Who the tenant's servers say is in each room, asked once per room and run. A room may be
    on any of the servers, so its participants are those of every server's answer, and unknown
    when one of them did not answer; a server that failed is not asked again in this run."""

    def __init__(self, service: RoomService, servers: dict[str, LiveKitAccount]) -> None:
        self._service = service
        self._servers = servers
        self._answers: dict[str, set[str] | None] = {}
        self.failed: dict[str, str] = {}  # url -> why it did not answer

    async def present_in(self, room: str) -> set[str] | None:
        """The sids of the room's participants; None when that is unknown."""
        if room not in self._answers:
            self._answers[room] = await self._ask(room)
        return self._answers[room]

    async def _ask(self, room: str) -> set[str] | None:
        present: set[str] = set()
        for url, account in self._servers.items():
            if url in self.failed:
                return None
            try:
                found = await self._service.participants(account, room)
            except LiveKitUnavailable as error:
                self.failed[url] = error.detail
                return None
            present |= found or set()  # None: the room is not on this server
        return present


@dataclass(frozen=True)
class ReconcileLiveKitCommand:
    tenant_name: str | None = None  # None: every tenant


class ReconcileLiveKit:
    """LiveKit drops webhooks (when its queues are too deep or a delivery waited too long), so a
    stay can stay open after its participant left. For tenants whose LiveKit accounts have a
    server URL, ask the server who is in each room with open stays: a participant still there was
    seen now; one who is gone, or whose room no longer exists, left when last seen (`completed`,
    reason `reconciled`, charged like any exit). A server that does not answer changes nothing for
    its rooms and is reported; one tenant's failure does not stop the others.

    Every tenant's open stays are reconciled, or one tenant's (NotFound if there is none)."""

    def __init__(
        self,
        tenants: TenantRepository,
        accounts: LiveKitAccounts,
        sessions: SessionRepository,
        stays: LiveKitStays,
        rooms: RoomService,
        clock: Clock,
    ) -> None:
        self._tenants = tenants
        self._accounts = accounts
        self._sessions = sessions
        self._stays = stays
        self._rooms = rooms
        self._clock = clock

    async def __call__(self, command: ReconcileLiveKitCommand) -> Reconciled:
        done = Reconciled()
        chosen = await chosen_tenants(self._tenants, command.tenant_name)
        failed = await each_tenant(self._tenants, chosen, lambda tenant: self._tenant(tenant, done))
        done.failures.extend(failed)
        return done

    async def _tenant(self, tenant: Tenant, done: Reconciled) -> None:
        servers = _servers(await self._accounts.of_tenant(tenant.id))
        if not servers:
            return
        done.tenants += 1
        rooms = _Rooms(self._rooms, servers)
        try:
            async for page in open_stays(self._sessions, tenant.id):
                for stay in page:
                    try:
                        await self._stay(tenant, stay, rooms, done)
                    except DomainError as error:
                        done.failures.append(refused(tenant, stay, error))
        finally:
            done.unreachable += [Unreachable(tenant.name, u, r) for u, r in rooms.failed.items()]

    async def _stay(self, tenant: Tenant, stay: Session, rooms: _Rooms, done: Reconciled) -> None:
        participant_sid = stay.attributes.get("participant_sid")
        if not isinstance(participant_sid, str):
            return  # not a stay LiveKit's webhooks opened: no participant to look for
        present = await rooms.present_in(stay.resource_id)
        if present is None:
            done.unknown += 1
        elif participant_sid in present:
            # The domain's rule for signs of life without data: an active stay is seen now; one
            # the reaper ended meanwhile has its guessed end moved to now; a final end stays.
            now = self._clock.now()
            window = tenant.settings.late_data_window
            await self._sessions.sign_of_life(tenant.id, stay.id, now, now, window)
            done.present += 1
        else:
            # Asking the server took time, during which a webhook may have been a sign of life:
            # the stay ends when it was last seen as stored now, not as the page read it.
            current = await self._sessions.get(tenant.id, stay.id)
            if current is None:
                return  # deleted meanwhile
            exited = await self._stays.end(
                tenant.id,
                stay.id,
                current.last_seen_at,
                reason=RECONCILED,
                settings=tenant.settings,
            )
            if exited.closed:  # else its webhook ended it meanwhile
                done.ended += 1


def _servers(accounts: list[LiveKitAccount]) -> dict[str, LiveKitAccount]:
    """One account per server URL (several keys of one server would give the same answer)."""
    by_url: dict[str, LiveKitAccount] = {}
    for account in accounts:
        if account.url is not None:
            by_url.setdefault(account.url, account)
    return by_url
