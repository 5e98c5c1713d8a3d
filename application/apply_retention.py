"""Old snapshots and events are deleted as each tenant's settings say (the server does it on a
schedule; `sessionmeter retention apply` does it now)."""

from dataclasses import dataclass
from datetime import timedelta

from application.ports import Clock, Retention, TenantRepository
from domain.errors import NotFound

BATCH = 1000


@dataclass(frozen=True)
class Deleted:
    snapshots: int = 0
    events: int = 0


class ApplyRetention:
    def __init__(self, tenants: TenantRepository, retention: Retention, clock: Clock) -> None:
        self._tenants = tenants
        self._retention = retention
        self._clock = clock

    async def __call__(self, tenant_name: str | None = None) -> Deleted:
        if tenant_name is None:
            tenants = await self._tenants.all()
        else:
            tenant = await self._tenants.get_by_name(tenant_name)
            if tenant is None:
                raise NotFound(f"no tenant named {tenant_name}")
            tenants = [tenant]
        now = self._clock.now()
        snapshots = events = 0
        for tenant in tenants:
            settings = tenant.settings
            cutoff = now - timedelta(days=settings.snapshot_retention_days)
            while (n := await self._retention.delete_snapshots(tenant.id, cutoff, BATCH)) > 0:
                snapshots += n
            cutoff = now - timedelta(days=settings.event_retention_days)
            while (n := await self._retention.delete_events(tenant.id, cutoff, BATCH)) > 0:
                events += n
        return Deleted(snapshots, events)
