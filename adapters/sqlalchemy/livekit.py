from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.asyncpg_livekit import AsyncpgLiveKitRows
from adapters.sqlalchemy.driver_steps import Writers, on_connection
from adapters.sqlalchemy.engine import insert, single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.livekit_steps import LiveKitRows, record_track
from adapters.sqlalchemy.sqlite_livekit import SqliteLiveKitRows
from adapters.sqlalchemy.tables import finished_rooms, livekit_accounts
from application.livekit.ports import FinishedRooms, LiveKitAccounts, TrackLog, WebhookLog
from domain.errors import Conflict, NotFound
from domain.livekit import LiveKitAccount, TrackReport


@raises_storage_errors
class SqlLiveKitAccounts(LiveKitAccounts):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def add(self, account: LiveKitAccount) -> None:
        stmt = insert(self._engine, livekit_accounts).values(
            api_key=account.api_key,
            tenant_id=account.tenant_id,
            api_secret=account.api_secret,
            url=account.url,
        )
        # Only the key's own tenant may replace its secret; an account without a url keeps the
        # stored one.
        stmt = stmt.on_conflict_do_update(
            index_elements=["api_key"],
            set_={
                "api_secret": stmt.excluded.api_secret,
                "url": func.coalesce(stmt.excluded.url, livekit_accounts.c.url),
            },
            where=livekit_accounts.c.tenant_id == stmt.excluded.tenant_id,
        )
        async with self._single.begin() as conn:
            if (await conn.execute(stmt)).rowcount == 0:
                raise Conflict(f"the LiveKit API key {account.api_key} belongs to another tenant")

    async def get(self, api_key: str) -> LiveKitAccount | None:
        query = select(livekit_accounts).where(livekit_accounts.c.api_key == api_key)
        async with self._single.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else account_from_row(row)

    async def of_tenant(self, tenant_id: str) -> list[LiveKitAccount]:
        query = (
            select(livekit_accounts)
            .where(livekit_accounts.c.tenant_id == tenant_id)
            .order_by(livekit_accounts.c.api_key)
        )
        async with self._single.connect() as conn:
            return [account_from_row(row) for row in await conn.execute(query)]

    async def set_url(self, tenant_id: str, api_key: str, url: str | None) -> LiveKitAccount:
        stmt = (
            update(livekit_accounts)
            .where(livekit_accounts.c.api_key == api_key, livekit_accounts.c.tenant_id == tenant_id)
            .values(url=url)
            .returning(*livekit_accounts.c)
        )
        async with self._single.begin() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(f"no LiveKit API key {api_key}")
        return account_from_row(row)


def account_from_row(row: Any) -> LiveKitAccount:
    return LiveKitAccount(row.api_key, row.tenant_id, row.api_secret, row.url)


# The webhook's hot path: its statements go to the driver as they are (driver_steps).
ROWS: Writers[LiveKitRows] = Writers(AsyncpgLiveKitRows, SqliteLiveKitRows)


@raises_storage_errors
class SqlWebhookLog(WebhookLog):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def seen(self, tenant_id: str, webhook_id: str) -> bool:
        return await on_connection(
            self._engine, ROWS, lambda rows: rows.seen(tenant_id, webhook_id), writes=False
        )

    async def record(self, tenant_id: str, webhook_id: str, at: datetime) -> bool:
        return await on_connection(
            self._engine,
            ROWS,
            lambda rows: rows.record_webhook(tenant_id, webhook_id, at),
            writes=True,
        )


@raises_storage_errors
class SqlTrackLog(TrackLog):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, tenant_id: str, session_id: str, report: TrackReport) -> bool:
        return await on_connection(
            self._engine,
            ROWS,
            lambda rows: record_track(rows, tenant_id, session_id, report),
            writes=True,
        )

    async def tracks_ending_with_stay(self, tenant_id: str, session_id: str) -> list[TrackReport]:
        return await on_connection(
            self._engine,
            ROWS,
            lambda rows: rows.tracks_ending_with_stay(tenant_id, session_id),
            writes=False,
        )


@raises_storage_errors
class SqlFinishedRooms(FinishedRooms):
    def __init__(self, engine: AsyncEngine, driver_engine: AsyncEngine) -> None:
        self._engine = engine
        self._driver_engine = driver_engine
        self._single = single_statement(engine)

    async def finish(self, tenant_id: str, room_sid: str, at: datetime) -> None:
        stmt = insert(self._engine, finished_rooms).values(
            tenant_id=tenant_id, room_sid=room_sid, finished_at=at
        )
        async with self._single.begin() as conn:
            await conn.execute(stmt.on_conflict_do_nothing())

    async def finished_at(self, tenant_id: str, room_sid: str) -> datetime | None:
        # Every new stay asks (a webhook's hot path): straight to the driver.
        return await on_connection(
            self._driver_engine,
            ROWS,
            lambda rows: rows.finished_at(tenant_id, room_sid),
            writes=False,
        )

    async def which_finished(
        self, tenant_id: str, room_sids: Collection[str]
    ) -> dict[str, datetime]:
        query = select(finished_rooms.c.room_sid, finished_rooms.c.finished_at).where(
            finished_rooms.c.tenant_id == tenant_id, finished_rooms.c.room_sid.in_(room_sids)
        )
        async with self._single.connect() as conn:
            return {row.room_sid: row.finished_at for row in await conn.execute(query)}
