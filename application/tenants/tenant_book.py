"""The tenants, remembered briefly by id: every LiveKit webhook reads its tenant's settings."""

from collections.abc import Callable

from application.ports import Clock
from application.remembered import Remembered
from application.tenants.ports import TenantRepository
from domain.tenants import Tenant, TenantSettings


class TenantBook(TenantRepository):
    """A TenantRepository whose `get` is remembered per tenant (application.remembered.TTL).
    Settings changed through it apply at once in this process, and within the TTL in others,
    as they do for API keys (Authenticate). A tenant not found is not remembered: one created
    by another process (the CLI) is found at once."""

    def __init__(self, tenants: TenantRepository, clock: Clock) -> None:
        self._tenants = tenants
        self._known: Remembered[Tenant | None] = Remembered(clock)

    async def add(self, tenant: Tenant) -> None:
        await self._tenants.add(tenant)

    async def get(self, tenant_id: str) -> Tenant | None:
        return await self._known.of(
            tenant_id, lambda: self._tenants.get(tenant_id), remember_none=False
        )

    async def get_by_name(self, name: str) -> Tenant | None:
        return await self._tenants.get_by_name(name)

    async def all(self) -> list[Tenant]:
        return await self._tenants.all()

    async def change_settings(
        self, tenant_id: str, change: Callable[[TenantSettings], TenantSettings]
    ) -> Tenant:
        # Forgotten even when the write failed: one that timed out may still have happened.
        try:
            return await self._tenants.change_settings(tenant_id, change)
        finally:
            self._known.forget(tenant_id)
