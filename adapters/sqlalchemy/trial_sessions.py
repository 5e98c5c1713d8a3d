"""Trial sessions counted by the database: each session's subscription in force is a correlated
subquery on the subject's history (its primary key), then one GROUP BY per subject."""

from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.sqlalchemy.engine import single_statement
from adapters.sqlalchemy.errors import raises_storage_errors
from adapters.sqlalchemy.tables import sessions, subscription_history
from application.trials.ports import TrialSessions
from domain.trial_report import FreeTrial, TrialUse


@raises_storage_errors
class SqlTrialSessions(TrialSessions):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = single_statement(engine)

    async def use(
        self, tenant_id: str, start: datetime, end: datetime, trial: FreeTrial
    ) -> TrialUse:
        s = sessions
        trial_sessions = (
            select(
                s.c.subject_id,
                func.count().label("sessions"),
                func.min(s.c.started_at).label("first"),
            )
            .where(
                s.c.tenant_id == tenant_id,
                s.c.started_at >= start,
                s.c.started_at < end,
                s.c.subject_id.is_not(None),
                s.c.kind.in_(sorted(trial.kinds)),
                ~_subscribed_at_start(trial),
            )
            .group_by(s.c.subject_id)
            .subquery("trial_sessions")
        )
        paid = subscription_history.alias("paid")
        converted = exists().where(
            paid.c.tenant_id == tenant_id,
            paid.c.subject_id == trial_sessions.c.subject_id,
            paid.c.set_at > trial_sessions.c.first,
            paid.c.plan_id.in_(sorted(trial.paid_plans)),
        )
        query = select(
            func.count(),
            func.coalesce(func.sum(trial_sessions.c.sessions), 0),
            func.coalesce(func.sum(case((converted, 1), else_=0)), 0),
        )
        async with self._engine.connect() as conn:
            subjects, used, conversions = (await conn.execute(query)).one()
        return TrialUse(int(subjects), int(used), int(conversions))


def _subscribed_at_start(trial: FreeTrial) -> Any:
    """Whether the session's subject had a subscription in force to one of the tenant's plans
    when it started (`FreeTrial.counts`): the last one set at or before the start, active then."""
    s, h = sessions, subscription_history
    later = subscription_history.alias("later")
    last_set: Any = (
        select(func.max(later.c.number))
        .where(
            later.c.tenant_id == s.c.tenant_id,
            later.c.subject_id == s.c.subject_id,
            later.c.set_at <= s.c.started_at,
        )
        .correlate(s)  # two levels down, where auto-correlation does not reach
        .scalar_subquery()
    )
    return exists().where(
        h.c.tenant_id == s.c.tenant_id,
        h.c.subject_id == s.c.subject_id,
        h.c.number == last_set,
        h.c.plan_id.in_(sorted(trial.plans)),
        or_(h.c.starts_at.is_(None), h.c.starts_at <= s.c.started_at),
        s.c.started_at < h.c.ends_at,
    )
