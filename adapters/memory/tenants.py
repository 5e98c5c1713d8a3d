from dataclasses import replace

from adapters.memory.store import MemoryStore
from application.tenants.ports import ApiKeyRepository, TenantRepository
from domain.errors import Conflict, NotFound
from domain.tenants import ApiKey, Tenant, TenantSettings


class MemoryTenantRepository(TenantRepository):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def add(self, tenant: Tenant) -> None:
        if any(t.name == tenant.name for t in self._store.tenants.values()):
            raise Conflict(f"a tenant named {tenant.name} exists")
        self._store.tenants[tenant.id] = tenant

    async def get(self, tenant_id: str) -> Tenant | None:
        return self._store.tenants.get(tenant_id)

    async def get_by_name(self, name: str) -> Tenant | None:
        return next((t for t in self._store.tenants.values() if t.name == name), None)

    async def all(self) -> list[Tenant]:
        return sorted(self._store.tenants.values(), key=lambda t: t.name)

    async def update_settings(self, tenant_id: str, settings: TenantSettings) -> Tenant:
        stored = self._store.tenants.get(tenant_id)
        if stored is None:
            raise NotFound(f"no tenant {tenant_id}")
        tenant = replace(stored, settings=settings)
        self._store.tenants[tenant_id] = tenant
        return tenant


class MemoryApiKeyRepository(ApiKeyRepository):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def add(self, key: ApiKey) -> None:
        self._store.api_keys[key.secret_hash] = key

    async def get_by_hash(self, secret_hash: str) -> ApiKey | None:
        return self._store.api_keys.get(secret_hash)
