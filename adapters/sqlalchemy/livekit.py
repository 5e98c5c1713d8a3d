from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.engine import insert, single_statement
from adapters.sqlalchemy.meters import add_usage
from adapters.sqlalchemy.tables import livekit_accounts, track_intervals, webhook_deliveries
from domain.errors import Conflict
from domain.livekit import LiveKitAccount, TrackReport


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


class SqlTrackLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def record(self, tenant_id: str, session_id: str, report: TrackReport) -> bool:
        key = (
            track_intervals.c.tenant_id == tenant_id,
            track_intervals.c.session_id == session_id,
            track_intervals.c.track_sid == report.track_sid,
        )
        new = insert(self._engine, track_intervals).values(
            tenant_id=tenant_id,
            session_id=session_id,
            track_sid=report.track_sid,
            meter=report.meter,
            counted=False,
        )
        # The UPDATE locks the track's row: concurrent reports of it take turns, so only one
        # finds it complete and not yet counted.
        merged = (
            update(track_intervals)
            .where(*key)
            .values(
                published_at=func.coalesce(track_intervals.c.published_at, report.published_at),
                unpublished_at=func.coalesce(
                    track_intervals.c.unpublished_at, report.unpublished_at
                ),
            )
            .returning(
                track_intervals.c.published_at,
                track_intervals.c.unpublished_at,
                track_intervals.c.counted,
            )
        )
        async with self._engine.begin() as conn:
            await conn.execute(new.on_conflict_do_nothing())
            published, unpublished, counted = (await conn.execute(merged)).one()
            seconds = TrackReport(report.track_sid, report.meter, published, unpublished).seconds
            if seconds is None or counted:
                return False
            await conn.execute(update(track_intervals).where(*key).values(counted=True))
            await add_usage(conn, self._engine, tenant_id, {session_id: {report.meter: seconds}})
        return True

    async def open_tracks(self, tenant_id: str, session_id: str) -> list[TrackReport]:
        query = (
            select(track_intervals)
            .where(
                track_intervals.c.tenant_id == tenant_id,
                track_intervals.c.session_id == session_id,
                track_intervals.c.published_at.is_not(None),
                track_intervals.c.unpublished_at.is_(None),
            )
            .order_by(track_intervals.c.track_sid)
        )
        async with self._single.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [TrackReport(r.track_sid, r.meter, r.published_at, None) for r in rows]
