from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.engine import insert, single_statement
from adapters.sqlalchemy.tables import livekit_accounts, webhook_deliveries
from domain.errors import Conflict
from domain.livekit import LiveKitAccount


class SqlLiveKitAccounts:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def add(self, account: LiveKitAccount) -> None:
        stmt = insert(self._engine, livekit_accounts).values(
            api_key=account.api_key, tenant_id=account.tenant_id, api_secret=account.api_secret
        )
        # Only the key's own tenant may replace its secret.
        stmt = stmt.on_conflict_do_update(
            index_elements=["api_key"],
            set_={"api_secret": stmt.excluded.api_secret},
            where=livekit_accounts.c.tenant_id == stmt.excluded.tenant_id,
        )
        async with self._single.begin() as conn:
            if (await conn.execute(stmt)).rowcount == 0:
                raise Conflict(f"the LiveKit API key {account.api_key} belongs to another tenant")

    async def get(self, api_key: str) -> LiveKitAccount | None:
        query = select(livekit_accounts).where(livekit_accounts.c.api_key == api_key)
        async with self._single.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else LiveKitAccount(row.api_key, row.tenant_id, row.api_secret)


class SqlWebhookLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def seen(self, tenant_id: str, webhook_id: str) -> bool:
        query = select(webhook_deliveries.c.id).where(
            webhook_deliveries.c.tenant_id == tenant_id, webhook_deliveries.c.id == webhook_id
        )
        async with self._single.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def record(self, tenant_id: str, webhook_id: str, at: datetime) -> None:
        stmt = (
            insert(self._engine, webhook_deliveries)
            .values(tenant_id=tenant_id, id=webhook_id, received_at=at)
            .on_conflict_do_nothing()
        )
        async with self._single.begin() as conn:
            await conn.execute(stmt)
