"""Where a subject stands on one resource's trial: sessions used and remaining."""

from application.ports import Clock
from application.sessions.ports import SessionRepository
from application.trials.plan_of_subject import PlanOfSubject
from domain.plans import TrialStatus, trial_status


class GetTrialStatus:
    def __init__(
        self, plan_of_subject: PlanOfSubject, sessions: SessionRepository, clock: Clock
    ) -> None:
        self._plan_of_subject = plan_of_subject
        self._sessions = sessions
        self._clock = clock

    async def __call__(self, tenant_id: str, subject_id: str, resource_id: str) -> TrialStatus:
        plan, subscription = await self._plan_of_subject(tenant_id, subject_id, self._clock.now())
        kinds = frozenset() if plan is None else plan.limits.session_kinds
        used = await self._sessions.count_started(tenant_id, subject_id, resource_id, kinds)
        return trial_status(resource_id, plan, subscription is not None, used)
