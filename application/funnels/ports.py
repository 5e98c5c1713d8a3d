"""The ports of the funnels area: what its use cases need from storage."""

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from application.ports import Window
from domain.calendar import Bucket
from domain.funnels import Funnel, FunnelTally, Trail
from domain.rollups import Dimensions, grouping_of
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
    # (Rollups') by resource and the values of all these dimensions: the group is row_group's.
    by_row: tuple[str, ...] | None = None

    @property
    def grouped(self) -> bool:
        return self.group_by is not None or self.group_by_resource or self.by_row is not None

    @property
    def keys(self) -> tuple[str, ...]:
        """The dimensions whose values tell a session's group."""
        if self.by_row is not None:
            return self.by_row
        return () if self.group_by is None else (self.group_by,)

    @property
    def by_resource(self) -> bool:
        """Whether a session's resource tells its group."""
        return self.group_by_resource or self.by_row is not None

    def group_of(self, resource_id: str, dimensions: Dimensions) -> str | None:
        """The group of a session (or of a rollup's row) with this resource and dimension values
        (as domain.rollups.dimensions_of spells them, of at least the keys the scope names)."""
        if self.by_row is not None:
            return row_group(resource_id, [p for p in dimensions if p[0] in self.by_row])
        if self.group_by_resource:
            return resource_id
        return None if self.group_by is None else dict(dimensions).get(self.group_by)

    @property
    def grouping(self) -> str | None:
        """How the scope groups, as application.funnels.group_tallies spells it (None: it does
        not, or by rows)."""
        if self.by_row is not None or not self.grouped:
            return None
        return grouping_of(self.group_by, self.group_by_resource)

    def matches(self, dimensions: Dimensions) -> bool:
        values = dict(dimensions)
        return all(values.get(k) == v for k, v in self.where.items())


ALL_SESSIONS = FunnelScope()


def row_group(resource_id: str, dimensions: Sequence[tuple[str, str]]) -> str:
    """A rollup row's group as text: the same resource and values spell it alike everywhere."""
    return json.dumps([resource_id, sorted(list(p) for p in dimensions)])


def row_of_group(group: str) -> tuple[str, Dimensions]:
    resource_id, pairs = json.loads(group)
    return resource_id, tuple((k, v) for k, v in pairs)


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


@dataclass(frozen=True)
class FunnelRow:
    """A funnel's tally of one day's sessions of one resource with the same dimension values."""

    resource_id: str
    dimensions: Dimensions
    tally: FunnelTally


@dataclass(frozen=True)
class FunnelDay:
    """A funnel rolled up over the sessions started in one day of the tenant's calendar: as a
    whole and per row. `final` when no session started that day was still open (or within
    LATE_DATA of its end) when it was rolled up, so reports may read it instead of the events;
    `fingerprint` names the funnel's definition it counted. Its `end` tells a day of another
    time zone that starts at the same instant (29 March in London and in UTC): after a change
    of zone such a day is not the tenant's day."""

    start: datetime
    fingerprint: str
    final: bool
    whole: FunnelTally
    rows: list[FunnelRow]
    dimensions: tuple[str, ...] = ()  # the keys its rows are split by
    end: datetime | None = None  # None: rolled up before days kept their end


def kept_for(day: Bucket, end: datetime | None) -> bool:
    """Whether a funnel day stored from `day`'s start up to `end` was rolled up over `day` (one
    kept without its end is taken for it)."""
    return end in (None, day.end)


class FunnelDays(Protocol):
    """Funnels rolled up by day (RollUpFunnels writes, reports read)."""

    async def replace(self, tenant_id: str, funnel: str, day: FunnelDay) -> None:
        """Store the funnel's day in place of whatever was stored for it, as one step: a reader
        sees the old day or the new one, never a mix."""
        ...

    async def stored(
        self, tenant_id: str, funnel: str, fingerprint: str, days: Sequence[Bucket]
    ) -> dict[datetime, bool]:
        """Of these days, those stored with this fingerprint over them (`kept_for`), by their
        start, and whether each is final."""
        ...

    async def wholes(
        self, tenant_id: str, funnel: str, starts: Sequence[datetime]
    ) -> list[FunnelTally]:
        """The whole tallies of the days starting at `starts` that are stored."""
        ...

    async def rows(
        self, tenant_id: str, funnel: str, starts: Sequence[datetime], where: Mapping[str, str]
    ) -> list[FunnelRow]:
        """The rows of the days starting at `starts`, at least those whose dimensions have all
        the values in `where` (a store may leave the choosing to its caller)."""
        ...

    async def groups(
        self, tenant_id: str, funnel: str, starts: Sequence[datetime], grouping: str
    ) -> list[tuple[str | None, FunnelTally]]:
        """The rows of the days starting at `starts` added up per group of the grouping
        (application.funnels.group_tallies), a day at a time: the caller adds the days up."""
        ...

    async def forget(self, tenant_id: str, funnel: str) -> None:
        """Delete every day of the funnel (it was removed)."""
        ...
