"""List a tenant's API keys."""

from dataclasses import dataclass

from application.tenants.ports import ApiKeyRepository
from domain.tenants import ApiKey


@dataclass(frozen=True)
class ListApiKeysQuery:
    tenant_id: str


@dataclass(frozen=True)
class ApiKeys:
    items: list[ApiKey]


class ListApiKeys:
    """Admins list their tenant's keys, oldest first, revoked and expired ones too: id, name,
    role, when each was created, expires, was revoked and was last used (to the minute) — never
    a secret, which is not kept."""

    def __init__(self, keys: ApiKeyRepository) -> None:
        self._keys = keys

    async def __call__(self, query: ListApiKeysQuery) -> ApiKeys:
        return ApiKeys(await self._keys.find(query.tenant_id))
