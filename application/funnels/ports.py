"""The ports of the funnels area: what its use cases need from storage."""

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from application.ports import Window
from domain.funnels import Funnel, Trail
from domain.session import SessionStatus


class FunnelRepository(Protocol):
    async def put(self, tenant_id: str, funnel: Funnel) -> None:
        """Store the funnel, replacing any of the same name."""
        ...

    async def get(self, tenant_id: str, name: str) -> Funnel | None: ...

    async def all(self, tenant_id: str) -> list[Funnel]:
        """The tenant's funnels, ordered by name."""
        ...

    async def delete(self, tenant_id: str, name: str) -> Funnel | None:
        """Remove the funnel; the funnel removed (None: there was none)."""
        ...


@dataclass(frozen=True)
class FunnelScope:
    """Which sessions a funnel report covers besides kind and window, and how it splits them:
    by declared dimensions' values (as domain.rollups.dimensions_of spells them)."""

    where: Mapping[str, str] = field(default_factory=dict)  # attributes.<key>=<value>
    group_by: str | None = None  # a dimension's key
    group_by_resource: bool = False  # (the daily summary's) by resource instead

    @property
    def grouped(self) -> bool:
        return self.group_by is not None or self.group_by_resource


ALL_SESSIONS = FunnelScope()


class FunnelEvents(Protocol):
    """What a funnel report reads of sessions and their events, without loading them whole."""

    def trails(
        self,
        tenant_id: str,
        kind: str,
        window: Window,
        types: frozenset[str],
        scope: FunnelScope = ALL_SESSIONS,
    ) -> AsyncIterator[Trail]:
        """The sessions of `kind` started in the window (and in the scope) that have events of
        these types, one Trail at a time, streamed from the store (never the window's events all
        at once): each with its status, its group (the scope's dimension's value, or None), and
        only its events of these types, ordered by (at, sequence_no). The store filters by type
        and orders by (session_id, at, sequence_no); sessions without such events are left
        out."""
        ...

    async def statuses(
        self, tenant_id: str, kind: str, window: Window, scope: FunnelScope = ALL_SESSIONS
    ) -> dict[str | None, dict[SessionStatus, int]]:
        """How many sessions of `kind` started in the window (and in the scope) are in each
        status, per group (the key None holds them all when the scope groups by nothing);
        counted by the store; statuses without sessions may be left out."""
        ...
