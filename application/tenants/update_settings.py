"""Change a tenant's settings."""

from dataclasses import asdict, dataclass
from typing import Any

from application.tenants.authenticate import Authenticate
from application.tenants.ports import TenantRepository
from domain.tenants import Tenant, TenantSettings


@dataclass(frozen=True)
class UpdateSettingsCommand:
    tenant: Tenant  # as the caller's key resolved it
    changes: dict[str, Any]  # TenantSettings fields and their new values


class UpdateSettings:
    """Change a tenant's settings; fields not given keep their values. A value out of its bounds
    is InvalidInput naming the field, and nothing changes. Changes made at once to different
    fields all stay. The server that took the change applies it at once; others within a few
    seconds (they remember keys briefly), but for reads of the settings, erasures and the
    background jobs, which take the settings as stored.

    A new time zone cuts days elsewhere, and new dimensions split rollups otherwise: the next
    rollup run recomputes every hour and day whose raw data is still kept. Days older than that
    keep the old zone's cut (the day, week and month reports leave them out) and the old
    dimensions (a dimension added later reads as absent there)."""

    def __init__(self, tenants: TenantRepository, authenticate: Authenticate) -> None:
        self._tenants = tenants
        self._authenticate = authenticate

    async def __call__(self, command: UpdateSettingsCommand) -> Tenant:
        tenant = command.tenant

        # Made to the settings as stored, not as the caller's key remembered them (for a few
        # seconds): a change made meanwhile, elsewhere, to another field stays.
        def changed(current: TenantSettings) -> TenantSettings:
            return TenantSettings(**{**asdict(current), **command.changes})

        try:
            updated = await self._tenants.change_settings(tenant.id, changed)
        finally:
            # Even when it failed: a write that timed out may still have happened. Others
            # apply it within the key cache's lifetime (authenticate.CACHE_TTL).
            self._authenticate.forget_tenant(tenant.id)
        return updated
