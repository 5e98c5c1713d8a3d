"""Trial sessions counted by the database: each subscriber's session's subscription in force is a
correlated subquery on the subject's history (its primary key), then one GROUP BY per subject
and one join to the subscribers' last paid subscription."""

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, false, func, or_, select, true
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
                _free_at_start(tenant_id, trial),
            )
            .group_by(s.c.subject_id)
            .subquery("trial_sessions")
        )
        # Each subscriber's last move to a paid plan, joined once (not looked up per subject).
        h = subscription_history.c
        last_paid = (
            select(h.subject_id, func.max(h.set_at).label("set_at"))
            .where(h.tenant_id == tenant_id, h.plan_id.in_(sorted(trial.paid_plans)))
            .group_by(h.subject_id)
            .subquery("last_paid")
        )
        converted = last_paid.c.set_at > trial_sessions.c.first
        query = select(
            func.count(),
            func.coalesce(func.sum(trial_sessions.c.sessions), 0),
            func.coalesce(func.sum(case((converted, 1), else_=0)), 0),
        ).select_from(
            trial_sessions.outerjoin(
                last_paid, last_paid.c.subject_id == trial_sessions.c.subject_id
            )
        )
        async with self._engine.connect() as conn:
            subjects, used, conversions = (await conn.execute(query)).one()
        return TrialUse(int(subjects), int(used), int(conversions))


def _free_at_start(tenant_id: str, trial: FreeTrial) -> Any:
    """Whether the session's subject had no subscription in force when it started. Most trial
    users never subscribe: one lookup in the set of subscribers (hashed once) settles their
    sessions, and only the others' are looked up in their history (CASE keeps that order)."""
    h = subscription_history
    subscribers = select(h.c.subject_id).where(h.c.tenant_id == tenant_id)
    return case(
        (sessions.c.subject_id.in_(subscribers), ~_subscribed_at_start(trial)), else_=true()
    )


def _subscribed_at_start(trial: FreeTrial) -> Any:
    """Whether the session's subject had a subscription in force to one of the tenant's plans
    when it started (`FreeTrial.counts`): the last one set at or before the start, active then
    (one look at the history per session; no subscription set by then: false)."""
    s, h = sessions, subscription_history
    in_force = and_(
        h.c.plan_id.in_(sorted(trial.plans)),
        or_(h.c.starts_at.is_(None), h.c.starts_at <= s.c.started_at),
        s.c.started_at < h.c.ends_at,
    )
    last_set: Any = (
        select(in_force)
        .where(
            h.c.tenant_id == s.c.tenant_id,
            h.c.subject_id == s.c.subject_id,
            h.c.set_at <= s.c.started_at,
        )
        .order_by(h.c.number.desc())
        .limit(1)
        .correlate(s)  # two levels down, where auto-correlation does not reach
        .scalar_subquery()
    )
    return func.coalesce(last_set, false())
