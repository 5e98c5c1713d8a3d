"""The ports of the trials area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from datetime import date, datetime
from typing import Protocol

from domain.calendar import Bucket
from domain.plans import MonthlyQuota, Plan, Subscription, SubscriptionSet
from domain.refusals import RefusedStart
from domain.trial_report import FreeTrial, RefusalTally, TrialUse


class PlanRepository(Protocol):
    async def put(self, tenant_id: str, plan: Plan) -> None:
        """Create or replace a plan; a new default plan makes the others non-default, so a
        tenant has at most one default plan: of default plans put at once, exactly one is the
        default afterwards."""
        ...

    async def all(self, tenant_id: str) -> list[Plan]:
        """The tenant's plans, ordered by id."""
        ...

    async def get(self, tenant_id: str, plan_id: str) -> Plan | None:
        """The tenant's plan of this id, or None."""
        ...


class SubscriptionRepository(Protocol):
    async def put(self, tenant_id: str, subscription: Subscription, set_at: datetime) -> None:
        """Set the subject's subscription, replacing any earlier one, and add it to the
        subject's history as its next entry (numbered from 1). Of concurrent puts for one
        subject each gets a number of its own, and the one numbered highest is the current
        subscription afterwards; the current subscription is always in the history."""
        ...

    async def get(self, tenant_id: str, subject_id: str) -> Subscription | None:
        """The subject's current subscription (the latest put), or None; as fast as one
        lookup by key, whatever the length of the history."""
        ...

    async def history(self, tenant_id: str, subject_id: str) -> list[SubscriptionSet]:
        """Every subscription ever put for the subject, newest (highest number) first."""
        ...


class ResourceRegistry(Protocol):
    async def register(
        self,
        tenant_id: str,
        subject_id: str,
        resource_id: str,
        kind: str,
        at: datetime,
        quota: MonthlyQuota | None,
    ) -> bool:
        """Register a resource for a subject once (False: it already was). With a quota, the
        count of the subject's registrations in its month and the insert are one atomic step:
        at the limit raise QuotaExceeded and store nothing."""
        ...

    async def count_in_month(self, tenant_id: str, subject_id: str, month: Bucket) -> int:
        """The subject's registrations in the month (registered_at in [start, end))."""
        ...


class RefusedStarts(Protocol):
    async def record(self, tenant_id: str, refused: RefusedStart) -> None:
        """Count one refused start on its (subject, kind, reason, day): one atomic increment,
        so of concurrent records of the same refusal each counts once."""
        ...

    async def tally(self, tenant_id: str, first_day: date, last_day: date) -> RefusalTally:
        """The refused starts of the days from `first_day` to `last_day` (both included): per
        reason, and the distinct subjects refused `trial_exhausted`; counted by the store."""
        ...


class TrialSessions(Protocol):
    async def use(
        self, tenant_id: str, start: datetime, end: datetime, trial: FreeTrial
    ) -> TrialUse:
        """Over the sessions started in [start, end) that are trial sessions
        (`FreeTrial.counts`, given the subject's subscription in force at the start,
        `domain.trial_report.in_force_at`): how many subjects, how many sessions, and how many
        of those subjects converted (`FreeTrial.converts`, after the subject's first trial
        session of the window). Counted by the store, not by loading the sessions."""
        ...
