"""Resolve an API key to the tenant and role it acts for."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from application.ports import Clock
from application.tenants.ports import ApiKeyRepository, TenantRepository
from domain.errors import Forbidden, Unauthorized
from domain.tenants import Access, Role, Tenant, hash_secret

# Keys are looked up on every request; remembering them briefly keeps that off the database.
# A change to a tenant's settings reaches every process within this time.
CACHE_TTL = timedelta(seconds=5)
CACHE_SIZE = 1024


@dataclass(frozen=True)
class Principal:
    tenant: Tenant
    access: Access
    key_id: str

    @property
    def role(self) -> Role:
        return self.access.role

    def require(self, role: Role) -> "Principal":
        if not self.role.allows(role):
            raise Forbidden(f"this needs an API key with the {role} role")
        return self


class Authenticate:
    def __init__(self, keys: ApiKeyRepository, tenants: TenantRepository, clock: Clock) -> None:
        self._keys = keys
        self._tenants = tenants
        self._clock = clock
        self._cache: dict[str, tuple[datetime, Principal]] = {}
        # Counts what was forgotten: a lookup under way meanwhile may have read the key or its
        # tenant before the change, so it is not remembered (a revoked key would pass here).
        self._forgettings = 0

    async def __call__(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthorized("send an API key in X-API-Key or Authorization: Bearer")
        secret_hash = hash_secret(secret)
        now = self._clock.now()
        cached = self._cache.get(secret_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        forgettings = self._forgettings
        principal = await self._lookup(secret_hash, now)
        if forgettings != self._forgettings:
            return principal
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[secret_hash] = (now + CACHE_TTL, principal)
        return principal

    def forget_tenant(self, tenant_id: str) -> None:
        """Drop what is remembered of a tenant's keys, e.g. after its settings changed."""
        self._forgettings += 1
        for secret_hash, (_, principal) in list(self._cache.items()):
            if principal.tenant.id == tenant_id:
                del self._cache[secret_hash]

    def forget_key(self, secret_hash: str) -> None:
        """Drop what is remembered of one key, e.g. after it was revoked."""
        self._forgettings += 1
        self._cache.pop(secret_hash, None)

    async def _lookup(self, secret_hash: str, now: datetime) -> Principal:
        key = await self._keys.get_by_hash(secret_hash)
        tenant = None if key is None else await self._tenants.get(key.tenant_id)
        if key is None or tenant is None:
            raise Unauthorized("unknown API key")
        if (refusal := key.refusal(now)) is not None:
            raise Unauthorized(refusal)
        # Looked up at most once per cache period per process, so this write is rare.
        if (minute := key.used_at(now)) is not None:
            await self._keys.used(key.id, minute)
        return Principal(tenant, key.access, key.id)
