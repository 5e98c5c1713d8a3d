from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.engine import single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.tables import api_keys, tenants
from application.tenants.ports import ApiKeyRepository, TenantRepository
from domain.errors import Conflict, NotFound
from domain.tenants import ApiKey, Role, Tenant, TenantSettings


@raises_storage_errors
class SqlTenantRepository(TenantRepository):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = single_statement(engine)
        self._transactions = engine

    async def add(self, tenant: Tenant) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(tenants.insert().values(tenant_to_row(tenant)))
        except IntegrityError:
            raise Conflict(f"a tenant named {tenant.name} exists") from None

    async def get(self, tenant_id: str) -> Tenant | None:
        return await self._one(tenants.c.id == tenant_id)

    async def get_by_name(self, name: str) -> Tenant | None:
        return await self._one(tenants.c.name == name)

    async def all(self) -> list[Tenant]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(tenants).order_by(tenants.c.name))
        return [tenant_from_row(row) for row in rows]

    async def change_settings(
        self, tenant_id: str, change: Callable[[TenantSettings], TenantSettings]
    ) -> Tenant:
        """The row is locked as it is read (SQLite: the transaction holds the write lock)."""
        async with self._transactions.begin() as conn:
            locked = select(tenants).where(tenants.c.id == tenant_id).with_for_update()
            row = (await conn.execute(locked)).first()
            if row is None:
                raise NotFound(f"no tenant {tenant_id}")
            before = tenant_from_row(row)
            settings = change(before.settings)
            await conn.execute(
                update(tenants).where(tenants.c.id == tenant_id).values(settings=asdict(settings))
            )
        return replace(before, settings=settings)

    async def _one(self, condition: Any) -> Tenant | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(tenants).where(condition))).first()
        return None if row is None else tenant_from_row(row)


@raises_storage_errors
class SqlApiKeyRepository(ApiKeyRepository):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = single_statement(engine)

    async def add(self, key: ApiKey) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(api_keys.insert().values(api_key_to_row(key)))

    async def find(self, tenant_id: str) -> list[ApiKey]:
        query = (
            select(api_keys)
            .where(api_keys.c.tenant_id == tenant_id)
            .order_by(api_keys.c.created_at, api_keys.c.id)
        )
        async with self._engine.connect() as conn:
            return [api_key_from_row(row) for row in await conn.execute(query)]

    async def revoke(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey | None:
        mine = [api_keys.c.tenant_id == tenant_id, api_keys.c.id == key_id]
        async with self._engine.begin() as conn:
            await conn.execute(
                update(api_keys).where(*mine, api_keys.c.revoked_at.is_(None)).values(revoked_at=at)
            )
            row = (await conn.execute(select(api_keys).where(*mine))).one_or_none()
        return None if row is None else api_key_from_row(row)

    async def used(self, key_id: str, minute: datetime) -> None:
        earlier = or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < minute)
        async with self._engine.begin() as conn:
            await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id, earlier).values(last_used_at=minute)
            )

    async def get_by_hash(self, secret_hash: str) -> ApiKey | None:
        async with self._engine.connect() as conn:
            query = select(api_keys).where(api_keys.c.secret_hash == secret_hash)
            row = (await conn.execute(query)).first()
        return None if row is None else api_key_from_row(row)


def tenant_from_row(row: Any) -> Tenant:
    return Tenant(row.id, row.name, row.created_at, TenantSettings(**row.settings))


def tenant_to_row(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.id,
        "name": tenant.name,
        "settings": asdict(tenant.settings),
        "created_at": tenant.created_at,
    }


def api_key_to_row(key: ApiKey) -> dict[str, Any]:
    return {**asdict(key), "role": key.role.value, "resources": _listed(key.resources)}


def api_key_from_row(row: Any) -> ApiKey:
    return ApiKey(**{**row._mapping, "role": Role(row.role), "resources": _set(row.resources)})


def _listed(resources: frozenset[str] | None) -> list[str] | None:
    return None if resources is None else sorted(resources)


def _set(resources: list[str] | None) -> frozenset[str] | None:
    return None if resources is None else frozenset(resources)
