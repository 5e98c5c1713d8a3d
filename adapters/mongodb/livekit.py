from contextlib import suppress
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from adapters.mongodb.documents import Document
from domain.errors import Conflict
from domain.livekit import LiveKitAccount


class MongoLiveKitAccounts:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._accounts = db["livekit_accounts"]

    async def add(self, account: LiveKitAccount) -> None:
        # Only the key's own tenant may replace its secret: for another tenant the filter
        # matches nothing and the upsert collides with the key's unique index.
        try:
            await self._accounts.update_one(
                {"api_key": account.api_key, "tenant_id": account.tenant_id},
                {"$set": {"api_secret": account.api_secret}},
                upsert=True,
            )
        except DuplicateKeyError:
            raise Conflict(
                f"the LiveKit API key {account.api_key} belongs to another tenant"
            ) from None

    async def get(self, api_key: str) -> LiveKitAccount | None:
        found = await self._accounts.find_one({"api_key": api_key})
        if found is None:
            return None
        return LiveKitAccount(found["api_key"], found["tenant_id"], found["api_secret"])


class MongoWebhookLog:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._webhooks = db["webhooks"]

    async def seen(self, tenant_id: str, webhook_id: str) -> bool:
        found = await self._webhooks.find_one(
            {"tenant_id": tenant_id, "id": webhook_id}, {"_id": 1}
        )
        return found is not None

    async def record(self, tenant_id: str, webhook_id: str, at: datetime) -> None:
        with suppress(DuplicateKeyError):  # a concurrent delivery of it recorded it first
            await self._webhooks.update_one(
                {"tenant_id": tenant_id, "id": webhook_id},
                {"$setOnInsert": {"received_at": at}},
                upsert=True,
            )
