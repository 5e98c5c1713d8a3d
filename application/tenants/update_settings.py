"""Change a tenant's settings; fields not given keep their values."""

from dataclasses import asdict
from typing import Any

from application.tenants.authenticate import Authenticate
from application.tenants.ports import TenantRepository
from domain.tenants import Tenant, TenantSettings


class UpdateSettings:
    def __init__(self, tenants: TenantRepository, authenticate: Authenticate) -> None:
        self._tenants = tenants
        self._authenticate = authenticate

    async def __call__(self, tenant: Tenant, changes: dict[str, Any]) -> Tenant:
        settings = TenantSettings(**{**asdict(tenant.settings), **changes})
        updated = await self._tenants.update_settings(tenant.id, settings)
        # This process applies the change at once; others within the key cache's lifetime.
        self._authenticate.forget_tenant(tenant.id)
        return updated
