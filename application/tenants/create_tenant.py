"""Operators create tenants."""

import uuid

from application.ports import Clock
from application.tenants.ports import TenantRepository
from domain.tenants import Tenant


class CreateTenant:
    def __init__(self, tenants: TenantRepository, clock: Clock) -> None:
        self._tenants = tenants
        self._clock = clock

    async def __call__(self, name: str) -> Tenant:
        tenant = Tenant(id=str(uuid.uuid4()), name=name, created_at=self._clock.now())
        await self._tenants.add(tenant)
        return tenant
