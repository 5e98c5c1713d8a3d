"""A subject adds a resource, within its plan's monthly quota."""

from dataclasses import dataclass, field

from application.ports import Clock
from application.trials.plan_of_subject import PlanOfSubject
from application.trials.ports import RefusedStarts, ResourceRegistry
from domain.calendar import Calendar, Period
from domain.errors import InvalidInput
from domain.plans import MonthlyQuota, QuotaExceeded
from domain.refusals import Refusal, RefusedStart
from domain.session import KIND_PATTERN
from domain.text import check_text


@dataclass(frozen=True)
class RegisterResourceCommand:
    tenant_id: str
    subject_id: str
    resource_id: str
    kind: str
    calendar: Calendar = field(default_factory=Calendar)  # the tenant's


@dataclass(frozen=True)
class RegisteredResource:
    subject_id: str
    resource_id: str
    kind: str
    created: bool  # False: it was registered already (a replay)


class RegisterResource:
    """A subject adds a resource (e.g. uploads a PDF to practise), within its plan's quota of
    resources a month: while the subject has added fewer than the quota this calendar month
    (of the tenant's time zone) it may add one more; at the quota the resource is refused and nothing is registered
    (`quota_exceeded`, with the quota and how many are registered). The store counts and
    registers in one step, deciding with `domain.plans.admit_resource`, so concurrent adds
    never pass the quota together. The plan is the one the subject is on now; without a plan,
    or on one that sets no quota, nothing is limited. Registering a resource the subject has
    registered already is a replay that changes nothing (even at the quota). Each refusal is
    counted for the trial report (per subject, kind, reason and day) before it is answered."""

    def __init__(
        self,
        resources: ResourceRegistry,
        plan_of_subject: PlanOfSubject,
        refused_starts: RefusedStarts,
        clock: Clock,
    ) -> None:
        self._resources = resources
        self._refused_starts = refused_starts
        self._plan_of_subject = plan_of_subject
        self._clock = clock

    async def __call__(self, command: RegisterResourceCommand) -> RegisteredResource:
        check_text("subject_id", command.subject_id, 200)
        check_text("resource_id", command.resource_id, 200)
        if not KIND_PATTERN.match(command.kind):
            raise InvalidInput("kind", "1-64 characters of a-z 0-9 _ . -")
        now = self._clock.now()
        plan, _ = await self._plan_of_subject(command.tenant_id, command.subject_id, now)
        limit = None if plan is None else plan.resource_limit()
        month = command.calendar.bucket(Period.MONTH, now)
        quota = None if limit is None else MonthlyQuota(limit, month)
        try:
            created = await self._resources.register(
                command.tenant_id, command.subject_id, command.resource_id, command.kind, now, quota
            )
        except QuotaExceeded:
            refused = RefusedStart.at(
                now, command.subject_id, command.kind, Refusal.QUOTA_EXCEEDED, command.calendar
            )
            await self._refused_starts.record(command.tenant_id, refused)
            raise
        return RegisteredResource(command.subject_id, command.resource_id, command.kind, created)
