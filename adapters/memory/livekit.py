from datetime import datetime

from adapters.memory.store import MemoryStore
from domain.errors import Conflict
from domain.livekit import LiveKitAccount


class MemoryLiveKitAccounts:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def add(self, account: LiveKitAccount) -> None:
        held = self._store.livekit_accounts.get(account.api_key)
        if held is not None and held.tenant_id != account.tenant_id:
            raise Conflict(f"the LiveKit API key {account.api_key} belongs to another tenant")
        self._store.livekit_accounts[account.api_key] = account

    async def get(self, api_key: str) -> LiveKitAccount | None:
        return self._store.livekit_accounts.get(api_key)


class MemoryWebhookLog:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def seen(self, tenant_id: str, webhook_id: str) -> bool:
        return (tenant_id, webhook_id) in self._store.webhooks

    async def record(self, tenant_id: str, webhook_id: str, at: datetime) -> None:
        self._store.webhooks.add((tenant_id, webhook_id))
