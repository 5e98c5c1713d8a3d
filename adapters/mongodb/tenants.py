from collections.abc import Callable
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any

from pymongo import ReadPreference, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from adapters.mongodb.documents import Document
from adapters.mongodb.errors import raises_storage_errors
from application.tenants.ports import ApiKeyRepository, TenantRepository
from domain.errors import Conflict, NotFound
from domain.tenants import ApiKey, Role, Tenant, TenantSettings

KEY_FIELDS = [f.name for f in fields(ApiKey)]


@raises_storage_errors
class MongoTenantRepository(TenantRepository):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._tenants = db["tenants"]

    async def add(self, tenant: Tenant) -> None:
        try:
            await self._tenants.insert_one(tenant_to_document(tenant))
        except DuplicateKeyError:
            raise Conflict(f"a tenant named {tenant.name} exists") from None

    async def get(self, tenant_id: str) -> Tenant | None:
        found = await self._tenants.find_one({"id": tenant_id})
        return None if found is None else tenant_from_document(found)

    async def get_by_name(self, name: str) -> Tenant | None:
        found = await self._tenants.find_one({"name": name})
        return None if found is None else tenant_from_document(found)

    async def all(self) -> list[Tenant]:
        return [tenant_from_document(d) async for d in self._tenants.find(sort=[("name", 1)])]

    async def change_settings(
        self, tenant_id: str, change: Callable[[TenantSettings], TenantSettings]
    ) -> Tenant:
        """The write is made only to the settings as read (no multi-document transaction is
        needed for one document); when another change came between, read and try again. Read
        from the primary: a secondary behind it would miss the write again and again."""
        primary = self._tenants.with_options(read_preference=ReadPreference.PRIMARY)
        while True:
            found = await primary.find_one({"id": tenant_id})
            if found is None:
                raise NotFound(f"no tenant {tenant_id}")
            before = tenant_from_document(found)
            updated = await self._tenants.find_one_and_update(
                {"id": tenant_id, "settings": found["settings"]},
                {"$set": {"settings": asdict(change(before.settings))}},
                return_document=ReturnDocument.AFTER,
            )
            if updated is not None:
                return tenant_from_document(updated)


@raises_storage_errors
class MongoApiKeyRepository(ApiKeyRepository):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._keys = db["api_keys"]

    async def add(self, key: ApiKey) -> None:
        await self._keys.insert_one(api_key_to_document(key))

    async def find(self, tenant_id: str) -> list[ApiKey]:
        cursor = self._keys.find({"tenant_id": tenant_id}, sort=[("created_at", 1), ("id", 1)])
        return [api_key_from_document(d) async for d in cursor]

    async def revoke(self, tenant_id: str, key_id: str, at: datetime) -> ApiKey | None:
        mine = {"tenant_id": tenant_id, "id": key_id}
        await self._keys.update_one({**mine, "revoked_at": None}, {"$set": {"revoked_at": at}})
        found = await self._keys.find_one(mine)
        return None if found is None else api_key_from_document(found)

    async def used(self, key_id: str, minute: datetime) -> None:
        # $max moves it forward only, and a key stored before it had one has none (null < date).
        await self._keys.update_one({"id": key_id}, {"$max": {"last_used_at": minute}})

    async def get_by_hash(self, secret_hash: str) -> ApiKey | None:
        found = await self._keys.find_one({"secret_hash": secret_hash})
        return None if found is None else api_key_from_document(found)


def tenant_to_document(tenant: Tenant) -> Document:
    return {
        "id": tenant.id,
        "name": tenant.name,
        "created_at": tenant.created_at,
        "settings": asdict(tenant.settings),
    }


def tenant_from_document(document: Document) -> Tenant:
    return Tenant(
        document["id"],
        document["name"],
        document["created_at"],
        TenantSettings(**document["settings"]),
    )


def api_key_to_document(key: ApiKey) -> Document:
    return {**asdict(key), "role": key.role.value, "resources": _listed(key.resources)}


def api_key_from_document(document: Document) -> ApiKey:
    # Keys stored before a field existed lack it.
    stored: dict[str, Any] = {name: document.get(name) for name in KEY_FIELDS}
    scope = _set(document.get("resources"))
    return ApiKey(**{**stored, "role": Role(document["role"]), "resources": scope})


def _listed(resources: frozenset[str] | None) -> list[str] | None:
    return None if resources is None else sorted(resources)


def _set(resources: list[str] | None) -> frozenset[str] | None:
    return None if resources is None else frozenset(resources)
