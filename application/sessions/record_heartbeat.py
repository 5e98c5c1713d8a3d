"""Keep a session alive."""

from dataclasses import dataclass, field
from datetime import datetime

from application.credits.running_cost import RunningCost, SessionView
from application.ports import Clock
from application.sessions.billed_kinds import BilledKinds, check_writes
from application.sessions.ports import SessionRepository
from application.sessions.session_ids import existing_session_id
from domain.clock import happened
from domain.tenants import Access, TenantSettings


@dataclass(frozen=True)
class RecordHeartbeatCommand:
    tenant_id: str
    session_id: str
    at: datetime | None = None
    settings: TenantSettings = field(default_factory=TenantSettings)
    # The caller's key: an ingest key may not write billed or limited kinds, nor a scoped one
    # other resources (BilledKinds).
    access: Access = field(default_factory=Access)


class RecordHeartbeat:
    """Keep a session alive: its last sign of life moves forward, never back. A heartbeat's `at`
    (by default now) dated up to 5 minutes ahead of the service's clock counts as now; further
    ahead is invalid, and older than the late-data window `late`. An ended session takes no
    heartbeat (conflict). The answer carries its running cost, as a read does, so a client
    heartbeating a rated session sees its credits run down. An ingest key may not heartbeat a
    session of a billed or limited kind, nor a scoped key a session of another resource
    (`forbidden`; see BilledKinds)."""

    def __init__(
        self,
        sessions: SessionRepository,
        running_cost: RunningCost,
        billed_kinds: BilledKinds,
        clock: Clock,
    ) -> None:
        self._billed_kinds = billed_kinds
        self._sessions = sessions
        self._running_cost = running_cost
        self._clock = clock

    async def __call__(self, command: RecordHeartbeatCommand) -> SessionView:
        now = self._clock.now()
        window = command.settings.late_data_window
        # A client clock ahead of ours is taken as now: no time is invented.
        at = now if command.at is None else min(happened("at", command.at, now, window), now)
        session_id = existing_session_id(command.session_id)
        await check_writes(self._sessions, self._billed_kinds, command, session_id)
        session = await self._sessions.heartbeat(command.tenant_id, session_id, at)
        return await self._running_cost.view(session, command.settings)
