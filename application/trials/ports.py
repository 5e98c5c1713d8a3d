"""The ports of the trials area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from datetime import datetime
from typing import Protocol

from domain.plans import Plan, Subscription


class PlanRepository(Protocol):
    async def put(self, tenant_id: str, plan: Plan) -> None:
        """Create or replace a plan; a new default plan makes the others non-default, so a
        tenant has at most one default plan: of default plans put at once, exactly one is the
        default afterwards."""
        ...

    async def all(self, tenant_id: str) -> list[Plan]: ...


class SubscriptionRepository(Protocol):
    async def put(self, tenant_id: str, subscription: Subscription) -> None:
        """Set the subject's subscription, replacing any earlier one."""
        ...

    async def get(self, tenant_id: str, subject_id: str) -> Subscription | None: ...


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
