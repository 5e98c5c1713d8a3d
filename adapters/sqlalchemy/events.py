from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.asyncpg_events import AsyncpgBatchWriter
from adapters.sqlalchemy.asyncpg_statements import asyncpg_connection
from adapters.sqlalchemy.driver_steps import Writers, in_transaction
from adapters.sqlalchemy.engine import single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.event_batches import BatchWriter, append_batch, append_unless_changed
from adapters.sqlalchemy.quantities import from_json, to_json
from adapters.sqlalchemy.remembered_sessions import RememberedSessions
from adapters.sqlalchemy.sqlite_events import SqliteBatchWriter
from adapters.sqlalchemy.tables import events
from application.events.ports import EventLog
from domain.events import Admission, BatchOutcome, Distribution, Event


def batch_writers(tenant_id: str) -> Writers[BatchWriter]:
    """The hot path of ingest: its statements go to the driver as they are (driver_steps),
    without SQLAlchemy's work per row and per statement."""
    return Writers(
        lambda driver: AsyncpgBatchWriter(driver, tenant_id),
        lambda connection: SqliteBatchWriter(connection, tenant_id),
    )


@raises_storage_errors
class SqlEventLog(EventLog):
    def __init__(
        self,
        engine: AsyncEngine,
        driver_engine: AsyncEngine,
        remembered: RememberedSessions,
    ) -> None:
        """`remembered`: the sessions this process last wrote (PostgreSQL), shared with the
        session repository."""
        self._engine = engine
        self._single = single_statement(engine)
        self._driver = driver_engine  # for the statements sent to the driver (driver_steps)
        self._unlocked = driver_engine.dialect.name == "postgresql"  # append_unless_changed
        self.remembered = remembered

    async def append(
        self,
        tenant_id: str,
        batch: Sequence[tuple[int, Event]],
        now: datetime,
        window: timedelta,
        admits: Admission | None = None,
    ) -> BatchOutcome:
        if self._unlocked:
            async with asyncpg_connection(self._driver) as driver:
                writer = AsyncpgBatchWriter(driver, tenant_id, self.remembered)
                outcome = await append_unless_changed(writer, batch, now, window, admits)
                if outcome is None and writer.recalled:  # not taken as remembered: read afresh
                    writer = AsyncpgBatchWriter(driver, tenant_id, self.remembered, recall=False)
                    outcome = await append_unless_changed(writer, batch, now, window, admits)
            if outcome is not None:
                return outcome
        outcome = await in_transaction(
            self._driver,
            batch_writers(tenant_id),
            lambda writer: append_batch(writer, batch, now, window, admits),
        )
        if self._unlocked and outcome.inserted:  # counted into its sessions: as remembered, past
            self.remembered.forget(tenant_id, {e.session_id for _, e in batch})
        return outcome

    async def find(
        self,
        tenant_id: str,
        session_id: str,
        limit: int,
        after_sequence_no: int = 0,
        type: str | None = None,
        label: str | None = None,
    ) -> list[Event]:
        conditions = [
            events.c.tenant_id == tenant_id,
            events.c.session_id == session_id,
            events.c.sequence_no > after_sequence_no,
        ]
        if type is not None:
            conditions.append(events.c.type == type)
        if label is not None:
            conditions.append(events.c.label == label)
        query = select(events).where(*conditions).order_by(events.c.sequence_no).limit(limit)
        async with self._single.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [event_from_row(row) for row in rows]

    async def distribution(self, tenant_id: str, session_id: str, field: str) -> Distribution:
        column = events.c[field]
        query = (
            select(column, func.count())
            .where(
                events.c.tenant_id == tenant_id,
                events.c.session_id == session_id,
                column.is_not(None),
            )
            .group_by(column)
        )
        async with self._single.connect() as conn:
            counts = {value: n for value, n in await conn.execute(query)}
        return Distribution(total=sum(counts.values()), counts=counts)


def event_to_row(tenant_id: str, event: Event) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "session_id": event.session_id,
        "sequence_no": event.sequence_no,
        "type": event.type,
        "at": event.at,
        "category": event.category,
        "label": event.label,
        "data": event.data,
        "meters": to_json(event.meters),
    }


def event_from_row(row: Any) -> Event:
    return Event(
        session_id=row.session_id,
        sequence_no=row.sequence_no,
        type=row.type,
        at=row.at,
        category=row.category,
        label=row.label,
        data=row.data,
        meters=from_json(row.meters),
    )
