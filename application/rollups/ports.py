"""The ports of the rollups area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from application.ports import Window
from domain.calendar import Calendar, Period
from domain.rollups import Activity, Rollup, UsageFigures, UsageFilter


class UsageSource(Protocol):
    """The raw data of a bucket, aggregated where it is stored (memory does not grow with the
    number of sessions or events in it)."""

    async def activity(
        self, tenant_id: str, start: datetime, end: datetime, dimensions: Sequence[str] = ()
    ) -> list[Activity]:
        """Per kind, resource and values of the `dimensions` (attribute keys; each session's
        values as domain.rollups.dimensions_of spells them) with anything in [start, end):
        sessions started and ended in it, the seconds of [started_at, ended_at or last_seen_at)
        inside it, events that happened in it, the usage of sessions that ended in it, and the
        seconds of closed tracks inside it by meter. Ordered by kind, resource, dimensions."""
        ...

    async def earliest_active_start(self, tenant_id: str) -> datetime | None:
        """When the oldest session still active started (its start day's funnels are not final
        yet)."""
        ...

    async def earliest_active_seen(self, tenant_id: str) -> datetime | None:
        """When the session still active that was seen least recently was last seen: the hours
        from then on change while it goes on (it is active until its last sign of life)."""
        ...


class RollupRepository(Protocol):
    async def replace(self, tenant_id: str, rollup: Rollup) -> None:
        """Store the bucket's rollup in place of whatever was stored for it, as one step: a
        reader sees the old bucket or the new one, never a mix."""
        ...

    async def find(
        self,
        tenant_id: str,
        period: Period,
        window: Window,
        kind: str | None = None,
        resource_id: str | None = None,
    ) -> list[Rollup]:
        """The buckets rolled up whose start is in the window, oldest first, with the activity
        of that kind and resource only (when given)."""
        ...

    async def figures(
        self,
        tenant_id: str,
        size: Period,
        window: Window,
        calendar: Calendar,
        chosen: UsageFilter,
    ) -> list[UsageFigures]:
        """The usage report: what domain.rollups.figures_by_bucket makes of the rollups of
        stored_period(size) found in the window (kind and resource as chosen). A store that can
        add them up where they are does, so that a month of thousands of resources' days is a
        few rows to fetch."""
        ...


@dataclass(frozen=True)
class RollupLease:
    """A runner's exclusive hold on a tenant's rollups, and where the previous run said the
    next one must start, or a rewind since when earlier (None: never rolled up nor rewound)."""

    holder: str
    resume_from: datetime | None
    # The tenant's rollup cut (TenantSettings.rollup_cut) the previous run made them by; None:
    # not recorded (never rolled up, or last rolled up by a version that did not record it).
    cut: str | None = None


class RollupLeases(Protocol):
    async def acquire(
        self, tenant_id: str, holder: str, now: datetime, until: datetime
    ) -> RollupLease | None:
        """Hold the tenant's rollups until `until`, unless another holder's lease is still
        running at `now` (then None). Of concurrent callers at most one holds it."""
        ...

    async def renew(self, tenant_id: str, holder: str, until: datetime) -> bool:
        """Extend the holder's lease; False when it has lost it."""
        ...

    async def release(
        self, tenant_id: str, holder: str, resume_from: datetime, cut: str | None
    ) -> None:
        """End the holder's lease and remember where the next run starts and the cut the
        tenant's rollups are made by."""
        ...

    async def rewind(self, tenant_id: str, to: datetime) -> None:
        """Late data changed the tenant's hours from `to` on: the next run that acquires the
        lease resumes no later than `to`, even when a run holding it now releases it with a
        later resume point. Concurrent rewinds keep the earliest. A tenant never rolled up is
        rewound too: its first run is given the rewind as where to resume (data older than the
        tenant, sent before its first run)."""
        ...
