"""Issue a tenant's API key."""

import uuid
from dataclasses import dataclass

from application.ports import Clock
from application.tenants.ports import ApiKeyRepository, TenantRepository
from domain.errors import InvalidInput, NotFound
from domain.tenants import ApiKey, Role


@dataclass(frozen=True)
class CreateApiKeyCommand:
    tenant_name: str
    role: Role | str


@dataclass(frozen=True)
class CreatedApiKey:
    """The stored key and its secret; the secret exists nowhere else afterwards."""

    key: ApiKey
    secret: str


class CreateApiKey:
    """Operators issue API keys, admin or ingest: the secret is shown once, only its hash is kept.
    NotFound if there is no tenant of that name; InvalidInput for another role."""

    def __init__(self, tenants: TenantRepository, keys: ApiKeyRepository, clock: Clock) -> None:
        self._tenants = tenants
        self._keys = keys
        self._clock = clock

    async def __call__(self, command: CreateApiKeyCommand) -> CreatedApiKey:
        tenant = await self._tenants.get_by_name(command.tenant_name)
        if tenant is None:
            raise NotFound(f"no tenant named {command.tenant_name}")
        try:
            role = Role(command.role)
        except ValueError:
            raise InvalidInput("role", "must be ingest, app or admin") from None
        key, secret = ApiKey.issue(str(uuid.uuid4()), tenant.id, role, self._clock.now())
        await self._keys.add(key)
        return CreatedApiKey(key, secret)
