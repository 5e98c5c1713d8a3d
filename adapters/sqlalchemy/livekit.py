from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.sqlalchemy.engine import insert, single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.events import event_to_row
from adapters.sqlalchemy.meters import add_usage
from adapters.sqlalchemy.tables import (
    events,
    livekit_accounts,
    sessions,
    track_intervals,
    webhook_deliveries,
)
from application.livekit.ports import LiveKitAccounts, TrackLog, WebhookLog
from domain.errors import Conflict, NotFound
from domain.livekit import LiveKitAccount, TrackReport, report_track, track_events
from domain.usage import Usage


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


@raises_storage_errors
class SqlWebhookLog(WebhookLog):
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


@raises_storage_errors
class SqlTrackLog(TrackLog):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._single = single_statement(engine)

    async def record(self, tenant_id: str, session_id: str, report: TrackReport) -> bool:
        key = (
            track_intervals.c.tenant_id == tenant_id,
            track_intervals.c.session_id == session_id,
            track_intervals.c.track_sid == report.track_sid,
        )
        # Sessions are never deleted: one seen here is still there when this commits.
        exists = select(sessions.c.id).where(
            sessions.c.tenant_id == tenant_id, sessions.c.id == session_id
        )
        new = insert(self._engine, track_intervals).values(
            tenant_id=tenant_id,
            session_id=session_id,
            track_sid=report.track_sid,
            meter=report.meter,
            counted=False,
        )
        # Locking the track's row makes concurrent reports of it take turns, so only one finds
        # an end new; the one whose end completes the track counts it, in the same transaction.
        stored = select(track_intervals).where(*key).with_for_update()
        async with self._engine.begin() as conn:
            if (await conn.execute(exists)).first() is None:
                return False  # no session, no tracks: nothing kept
            await conn.execute(new.on_conflict_do_nothing())
            row = (await conn.execute(stored)).one()
            known = TrackReport(row.track_sid, row.meter, row.published_at, row.unpublished_at)
            change = report_track(known, row.counted, report)
            if not change.changed:
                return False
            await conn.execute(
                update(track_intervals)
                .where(*key)
                .values(
                    published_at=change.track.published_at,
                    unpublished_at=change.track.unpublished_at,
                    counted=change.counted,
                )
            )
            await self._append_events(conn, tenant_id, session_id, change.track, change.ends)
            if change.seconds is None:
                return False
            added: Usage = {change.track.meter: change.seconds}
            await add_usage(conn, self._engine, tenant_id, {session_id: added})
        return True

    async def _append_events(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        session_id: str,
        track: TrackReport,
        ends: list[tuple[str, datetime]],
    ) -> None:
        if not ends:
            return
        numbered = (
            update(sessions)
            .where(sessions.c.tenant_id == tenant_id, sessions.c.id == session_id)
            .values(
                max_sequence_no=sessions.c.max_sequence_no + len(ends),
                event_count=sessions.c.event_count + len(ends),
            )
            .returning(sessions.c.max_sequence_no)
        )
        last = (await conn.execute(numbered)).scalar_one_or_none()
        if last is None:
            return
        first = last - len(ends) + 1
        rows = [
            event_to_row(tenant_id, e)
            for e in track_events(session_id, first, track.meter, track.track_sid, ends)
        ]
        await conn.execute(events.insert(), rows)

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
