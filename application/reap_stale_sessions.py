"""Close sessions whose client stopped sending signs of life, where they were last seen."""

from datetime import timedelta

from application.deduct_credits import DeductCredits
from application.ports import Clock, SessionRepository, TenantRepository
from domain.errors import NotFound

# Sessions closed per storage call: bounded so a backlog never becomes one huge transaction.
BATCH_SIZE = 500


class ReapStaleSessions:
    def __init__(
        self,
        tenants: TenantRepository,
        sessions: SessionRepository,
        deduct_credits: DeductCredits,
        clock: Clock,
    ) -> None:
        self._tenants = tenants
        self._sessions = sessions
        self._deduct_credits = deduct_credits
        self._clock = clock

    async def __call__(self, tenant_name: str | None = None) -> int:
        """Close every stale session (of one tenant, or of all) and charge it; settle charges a
        crash left pending; return how many sessions were closed."""
        if tenant_name is None:
            tenants = await self._tenants.all()
        else:
            tenant = await self._tenants.get_by_name(tenant_name)
            if tenant is None:
                raise NotFound(f"no tenant named {tenant_name}")
            tenants = [tenant]
        closed = 0
        now = self._clock.now()
        for tenant in tenants:
            cutoff = now - timedelta(seconds=tenant.settings.idle_timeout_seconds)
            rated = await self._deduct_credits.rated_kinds(tenant.id)
            while True:
                batch = await self._sessions.time_out_idle(tenant.id, cutoff, BATCH_SIZE, rated)
                closed += len(batch)
                if len(batch) < BATCH_SIZE:
                    break
            while pending := await self._sessions.pending_charges(tenant.id, BATCH_SIZE):
                for session in pending:
                    await self._deduct_credits(session)
        return closed
