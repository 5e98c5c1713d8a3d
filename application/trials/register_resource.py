"""A subject adds a resource (e.g. uploads a PDF to practise), within its plan's monthly quota."""

from application.ports import Clock
from application.trials.plan_of_subject import PlanOfSubject
from application.trials.ports import ResourceRegistry
from domain.errors import InvalidInput
from domain.session import KIND_PATTERN
from domain.text import check_text


class RegisterResource:
    def __init__(
        self, resources: ResourceRegistry, plan_of_subject: PlanOfSubject, clock: Clock
    ) -> None:
        self._resources = resources
        self._plan_of_subject = plan_of_subject
        self._clock = clock

    async def __call__(self, tenant_id: str, subject_id: str, resource_id: str, kind: str) -> bool:
        """True when registered now, False when it already was (a replay)."""
        check_text("resource_id", resource_id, 200)
        if not KIND_PATTERN.match(kind):
            raise InvalidInput("kind", "1-64 characters of a-z 0-9 _ . -")
        now = self._clock.now()
        plan, _ = await self._plan_of_subject(tenant_id, subject_id, now)
        limit = None if plan is None else plan.resource_limit()
        return await self._resources.register(tenant_id, subject_id, resource_id, kind, now, limit)
