"""The ports of the tenants area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from collections.abc import Callable
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

    async def change_settings(
        self, tenant_id: str, change: Callable[[TenantSettings], TenantSettings]
    ) -> Tenant:
        """Store what `change` makes of the tenant's settings as stored now, in one step with
        that read: changes made at once to different fields all stay, none is made to settings
        another has replaced meanwhile. `change` only computes, and may be called again (a
        retry); what it raises leaves the settings as they were. The tenant after; NotFound
        if there is no such tenant."""
        ...


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
