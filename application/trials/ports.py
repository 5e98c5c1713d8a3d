"""The ports of the trials area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from datetime import datetime
from typing import Protocol

from domain.plans import Plan, Subscription, SubscriptionSet


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
        monthly_limit: int | None,
    ) -> bool:
        """Register a resource for a subject once (False: it already was). With a limit, the
        count of the subject's registrations in `at`'s calendar month (UTC) and the insert are
        one atomic step: at the limit raise QuotaExceeded and store nothing."""
        ...

    async def count_in_month(self, tenant_id: str, subject_id: str, at: datetime) -> int: ...
