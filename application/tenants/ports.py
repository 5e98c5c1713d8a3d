"""The ports of the tenants area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from datetime import datetime
from typing import Protocol

from domain.tenants import ApiKey, Tenant, TenantSettings


class TenantRepository(Protocol):
    async def add(self, tenant: Tenant) -> None:
        """Store a new tenant; Conflict if the name is taken."""
        ...

    async def get(self, tenant_id: str) -> Tenant | None: ...

    async def get_by_name(self, name: str) -> Tenant | None: ...

    async def all(self) -> list[Tenant]: ...

    async def update_settings(self, tenant_id: str, settings: TenantSettings) -> Tenant: ...


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey) -> None: ...

    async def get_by_hash(self, secret_hash: str) -> ApiKey | None: ...

    async def find(self, tenant_id: str) -> list[ApiKey]:
        """The tenant's keys, oldest first, revoked ones too."""
        ...

    async def revoke(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey | None:
        """Mark the key revoked at `at` unless it is already (then it keeps its first
        revocation); the key as stored afterwards, or None if the tenant has no such key."""
        ...

    async def used(self, key_id: str, minute: datetime) -> None:
        """Record the key's last use, moving it forward only (concurrent callers: the latest)."""
        ...
