"""Refused starts: one upsert that adds one; the tally is a GROUP BY over the days asked."""

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.engine import insert, single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.tables import refused_starts
from application.trials.ports import RefusedStarts
from domain.refusals import Refusal, RefusedStart
from domain.trial_report import RefusalTally


@raises_storage_errors
class SqlRefusedStarts(RefusedStarts):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = single_statement(engine)

    async def record(self, tenant_id: str, refused: RefusedStart) -> None:
        # INSERT … ON CONFLICT DO UPDATE SET count = count + 1: the database adds, so no
        # concurrent refusal is lost between a read and a write.
        row = {
            "tenant_id": tenant_id,
            "day": refused.day,
            "subject_id": refused.subject_id,
            "kind": refused.kind,
            "reason": refused.reason.value,
            "count": 1,
        }
        stmt = insert(self._engine, refused_starts).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", "day", "subject_id", "kind", "reason"],
            set_={"count": refused_starts.c.count + 1},
        )
        async with self._engine.begin() as conn:
            await conn.execute(stmt)

    async def tally(self, tenant_id: str, first_day: date, last_day: date) -> RefusalTally:
        r = refused_starts
        query = (
            select(r.c.reason, func.sum(r.c.count), func.count(func.distinct(r.c.subject_id)))
            .where(r.c.tenant_id == tenant_id, r.c.day >= first_day, r.c.day <= last_day)
            .group_by(r.c.reason)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        starts = {Refusal(reason): int(count) for reason, count, _ in rows}
        exhausted = next((n for reason, _, n in rows if reason == Refusal.TRIAL_EXHAUSTED), 0)
        return RefusalTally(starts, int(exhausted))
