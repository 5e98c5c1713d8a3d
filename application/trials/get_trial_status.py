"""Where a subject stands on one resource's trial."""

from dataclasses import dataclass

from application.ports import Clock
from application.sessions.ports import SessionRepository
from application.trials.plan_of_subject import PlanOfSubject
from domain.plans import TrialStatus, trial_status


@dataclass(frozen=True)
class GetTrialStatusQuery:
    tenant_id: str
    subject_id: str
    resource_id: str


class GetTrialStatus:
    """Where a subject stands on one resource: the sessions it has started there of the kinds
    its plan limits (a session counts when it starts, whatever its end), and how many more it
    may start (no number when its plan does not limit them). It is a free trial when the limit
    comes from a plan the subject did not subscribe to (the tenant's default plan); decided by
    `domain.plans.trial_status`, with the limit a start is refused at."""

    def __init__(
        self, plan_of_subject: PlanOfSubject, sessions: SessionRepository, clock: Clock
    ) -> None:
        self._plan_of_subject = plan_of_subject
        self._sessions = sessions
        self._clock = clock

    async def __call__(self, query: GetTrialStatusQuery) -> TrialStatus:
        tenant_id, subject_id, resource_id = query.tenant_id, query.subject_id, query.resource_id
        plan, subscription = await self._plan_of_subject(tenant_id, subject_id, self._clock.now())
        kinds = frozenset() if plan is None else plan.limits.session_kinds
        used = await self._sessions.count_started(tenant_id, subject_id, resource_id, kinds)
        return trial_status(resource_id, plan, subscription is not None, used)
