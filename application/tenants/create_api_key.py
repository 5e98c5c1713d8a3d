"""Operators issue API keys: the secret is shown once, only its hash is kept."""

import uuid

from application.ports import Clock
from application.tenants.ports import ApiKeyRepository, TenantRepository
from domain.errors import InvalidInput, NotFound
from domain.tenants import ApiKey, Role


class CreateApiKey:
    def __init__(self, tenants: TenantRepository, keys: ApiKeyRepository, clock: Clock) -> None:
        self._tenants = tenants
        self._keys = keys
        self._clock = clock

    async def __call__(self, tenant_name: str, role: Role | str) -> tuple[ApiKey, str]:
        """The stored key and its secret; the secret exists nowhere else afterwards."""
        tenant = await self._tenants.get_by_name(tenant_name)
        if tenant is None:
            raise NotFound(f"no tenant named {tenant_name}")
        try:
            role = Role(role)
        except ValueError:
            raise InvalidInput("role", "must be admin or ingest") from None
        key, secret = ApiKey.issue(str(uuid.uuid4()), tenant.id, role, self._clock.now())
        await self._keys.add(key)
        return key, secret
