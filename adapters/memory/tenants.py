from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

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

    async def change_settings(
        self, tenant_id: str, change: Callable[[TenantSettings], TenantSettings]
    ) -> Tenant:
        stored = self._store.tenants.get(tenant_id)
        if stored is None:
            raise NotFound(f"no tenant {tenant_id}")
        tenant = replace(stored, settings=change(stored.settings))
        self._store.tenants[tenant_id] = tenant
        return tenant


class MemoryApiKeyRepository(ApiKeyRepository):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def add(self, key: ApiKey) -> None:
        self._store.api_keys[key.secret_hash] = key

    async def get_by_hash(self, secret_hash: str) -> ApiKey | None:
        return self._store.api_keys.get(secret_hash)

    async def find(self, tenant_id: str) -> list[ApiKey]:
        mine = [k for k in self._store.api_keys.values() if k.tenant_id == tenant_id]
        return sorted(mine, key=lambda k: (k.created_at, k.id))

    async def revoke(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey | None:
        for secret_hash, key in self._store.api_keys.items():
            if key.tenant_id == tenant_id and key.id == key_id:
                if key.revoked_at is None:
                    key = self._store.api_keys[secret_hash] = replace(key, revoked_at=at)
                return key
        return None

    async def used(self, key_id: str, minute: datetime) -> None:
        for secret_hash, key in self._store.api_keys.items():
            if key.id == key_id and (key.last_used_at is None or key.last_used_at < minute):
                self._store.api_keys[secret_hash] = replace(key, last_used_at=minute)
