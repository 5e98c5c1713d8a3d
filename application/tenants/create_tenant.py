"""Create a tenant."""

import uuid
from dataclasses import dataclass

from application.ports import Clock
from application.tenants.ports import TenantRepository
from domain.tenants import Tenant


@dataclass(frozen=True)
class CreateTenantCommand:
    name: str


class CreateTenant:
    """Operators create tenants: teams whose data is kept apart. A name is 1-64 characters of
    A-Z a-z 0-9 _ . -, starting alphanumeric (InvalidInput otherwise), and is taken once
    (Conflict)."""

    def __init__(self, tenants: TenantRepository, clock: Clock) -> None:
        self._tenants = tenants
        self._clock = clock

    async def __call__(self, command: CreateTenantCommand) -> Tenant:
        tenant = Tenant(id=str(uuid.uuid4()), name=command.name, created_at=self._clock.now())
        await self._tenants.add(tenant)
        return tenant
