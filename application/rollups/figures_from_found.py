"""The usage report's figures from the rollups as `RollupRepository.find` gives them, added up
in Python: for stores that keep a bucket whole (memory, MongoDB) or hold little (SQLite)."""

from application.ports import Window
from application.rollups.ports import RollupRepository
from domain.calendar import Calendar, Period
from domain.rollups import UsageFigures, UsageFilter, figures_by_bucket, stored_period


async def figures_from_found(
    rollups: RollupRepository,
    tenant_id: str,
    size: Period,
    window: Window,
    calendar: Calendar,
    chosen: UsageFilter,
) -> list[UsageFigures]:
    found = await rollups.find(
        tenant_id, stored_period(size), window, chosen.kind, chosen.resource_id
    )
    return figures_by_bucket(found, calendar, size, chosen)
