"""Read a tenant's settings."""

from dataclasses import dataclass

from application.tenants.as_stored import as_stored
from application.tenants.ports import TenantRepository
from domain.tenants import Tenant, TenantSettings


@dataclass(frozen=True)
class ReadSettingsQuery:
    tenant: Tenant  # as the caller's key resolved it


class ReadSettings:
    """The tenant's settings as stored, not as the caller's key remembered them: a change just
    made through another server process reads back at once. (A client changes a list, such as
    `personal_attributes`, by reading it and sending it back whole.)"""

    def __init__(self, tenants: TenantRepository) -> None:
        self._tenants = tenants

    async def __call__(self, query: ReadSettingsQuery) -> TenantSettings:
        return (await as_stored(self._tenants, query.tenant)).settings
