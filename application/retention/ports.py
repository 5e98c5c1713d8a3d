"""The ports of the retention area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from datetime import datetime
from typing import Protocol

from domain.calendar import Period


class Retention(Protocol):
    """Deletes in bounded batches, so that no delete holds a table-wide lock or runs long."""

    async def delete_snapshots(self, tenant_id: str, taken_before: datetime, limit: int) -> int:
        """Delete up to `limit` of the tenant's snapshots taken before the cutoff; how many."""
        ...

    async def delete_events(self, tenant_id: str, before: datetime, limit: int) -> int:
        """Delete up to `limit` of the tenant's events that happened before the cutoff (their
        sessions keep the usage and counts they added); how many."""
        ...

    async def delete_errors(self, tenant_id: str, before: datetime, limit: int) -> int:
        """Delete up to `limit` of the tenant's errors that happened before the cutoff; how many."""
        ...

    async def delete_metrics(self, tenant_id: str, started_before: datetime, limit: int) -> int:
        """Delete up to `limit` of the tenant's performance metrics that started before the
        cutoff; how many."""
        ...

    async def delete_rollups(
        self, tenant_id: str, period: Period, started_before: datetime, limit: int
    ) -> int:
        """Delete up to `limit` of the tenant's rollups of that period whose bucket started
        before the cutoff; how many buckets. Days take the funnels' days before the cutoff with
        them (a few rows a day, not counted)."""
        ...

    async def forget_webhooks(self, tenant_id: str, received_before: datetime, limit: int) -> int:
        """Forget up to `limit` of the tenant's handled webhook ids received before the cutoff,
        and of its rooms finished before it (FinishedRooms); how many."""
        ...
