"""The ports of the reports area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from typing import Protocol

from application.ports import Window
from domain.reports import ResourceActivity, UsageStats, WatchTime


class Reports(Protocol):
    """Figures computed where the data lives: no method loads every session into Python."""

    async def watch_time(self, tenant_id: str, resource_id: str, window: Window) -> list[WatchTime]:
        """Per subject (anonymous sessions excluded), over exited sessions of the resource."""
        ...

    async def resources(
        self, tenant_id: str, kind: str | None, window: Window
    ) -> list[ResourceActivity]:
        """Per resource with sessions started in the window, ordered by resource id."""
        ...

    async def usage_stats(self, tenant_id: str, subject_id: str, window: Window) -> UsageStats: ...

    async def active(self, tenant_id: str, resource_id: str | None) -> int: ...
