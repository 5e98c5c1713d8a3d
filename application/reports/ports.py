"""The ports of the reports area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from typing import Protocol

from application.ports import Window
from domain.reports import ResourceActivity, UsageStats, WatchTime
from domain.rollups import Dimensions

EVERY: Dimensions = ()  # no dimension asked for: every session


class Reports(Protocol):
    """Figures computed where the data lives: no method loads every session into Python."""

    async def watch_time(
        self,
        tenant_id: str,
        resource_id: str,
        window: Window,
        where: Dimensions = EVERY,
        group_by: str | None = None,
    ) -> list[WatchTime]:
        """Per subject (anonymous sessions excluded), over exited sessions of the resource
        (with those dimensions' values, as domain.rollups.dimensions_of spells them), ordered by
        subject. With `group_by` (a dimension's key): per value of that dimension instead (None:
        sessions without it), in any order, the figures summed over the group's subjects, each
        subject's unique seconds those of its visits in the group."""
        ...

    async def resources(
        self,
        tenant_id: str,
        kind: str | None,
        window: Window,
        where: Dimensions = EVERY,
        group_by: str | None = None,
    ) -> list[ResourceActivity]:
        """Per resource with sessions started in the window (and with those dimensions'
        values), ordered by resource id. With `group_by` (a dimension's key): per value of that
        dimension instead (None: sessions without it), in any order, each figure over the
        group's sessions whatever their resource (a subject counted once, the peak the most of
        them active at once)."""
        ...

    async def usage_stats(self, tenant_id: str, subject_id: str, window: Window) -> UsageStats: ...

    async def active(self, tenant_id: str, resource_id: str | None) -> int: ...
