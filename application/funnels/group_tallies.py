"""A funnel day's rows added up per group: per resource, or per value of one dimension (None:
the rows without it). A report grouped that way that chooses no value reads these for the days
rolled up: a store keeps them (SQL) or adds the day's rows up when asked (the others)."""

from collections.abc import Iterable

from application.funnels.ports import FunnelRow
from domain.funnels import FunnelTally
from domain.rollups import ATTRIBUTES, BY_RESOURCE


def groupings(dimensions: Iterable[str]) -> list[str]:
    """Every grouping of a day whose rows are split by these dimensions."""
    return [BY_RESOURCE, *(ATTRIBUTES + key for key in dimensions)]


def group_tallies(rows: Iterable[FunnelRow], grouping: str) -> dict[str | None, FunnelTally]:
    tallies: dict[str | None, FunnelTally] = {}
    key = grouping.removeprefix(ATTRIBUTES)
    for row in rows:
        group = row.resource_id if grouping == BY_RESOURCE else dict(row.dimensions).get(key)
        tally = tallies.setdefault(group, FunnelTally(row.tally.stages))
        tally += row.tally
    return tallies
