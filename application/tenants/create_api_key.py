"""Issue a tenant's API key."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from application.ports import Clock
from application.tenants.ports import ApiKeyRepository, TenantRepository
from domain.errors import InvalidInput, NotFound
from domain.tenants import ApiKey, Role


@dataclass(frozen=True)
class CreateApiKeyCommand:
    tenant_name: str
    role: Role | str
    name: str | None = None
    expires_at: datetime | None = None  # None: until revoked
    # An ingest key for these resources or devices only (a kiosk's own); None: the whole tenant.
    resources: Sequence[str] | None = None


@dataclass(frozen=True)
class CreatedApiKey:
    """The stored key and its secret; the secret exists nowhere else afterwards."""

    key: ApiKey
    secret: str


class CreateApiKey:
    """Operators issue API keys — `ingest` (a browser's, a kiosk's), `app` (a product's back end)
    or `admin` — optionally named and expiring: the secret is shown once, only its hash is kept.
    An ingest key may be scoped to resources (ids of resources or kiosk devices, 1-100): it then
    writes and reads by id only their sessions, errors, metrics and sales. NotFound if there is
    no tenant of that name; InvalidInput for another role, an empty or long name, an expiry that
    is not in the future, or a scope that is empty, too long, or on an app or admin key."""

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
        key, secret = ApiKey.issue(
            str(uuid.uuid4()),
            tenant.id,
            role,
            self._clock.now(),
            command.name,
            command.expires_at,
            command.resources,
        )
        await self._keys.add(key)
        return CreatedApiKey(key, secret)
