"""Change a tenant's settings; fields not given keep their values."""

from dataclasses import asdict
from typing import Any

from application.ports import TenantRepository
from domain.tenants import Tenant, TenantSettings


class UpdateSettings:
    def __init__(self, tenants: TenantRepository) -> None:
        self._tenants = tenants

    async def __call__(self, tenant: Tenant, changes: dict[str, Any]) -> Tenant:
        settings = TenantSettings(**{**asdict(tenant.settings), **changes})
        return await self._tenants.update_settings(tenant.id, settings)
