"""Read snapshots back with their traffic."""

from dataclasses import dataclass
from datetime import datetime

from application.ports import Window
from application.snapshots.ports import SnapshotLog
from domain.errors import InvalidInput
from domain.snapshots import MeasuredSnapshot

MAX_LIMIT = 1000


@dataclass(frozen=True)
class ListSnapshotsQuery:
    tenant_id: str
    source: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 100


class ListSnapshots:
    """Admins read snapshots back, of one source or all, taken in the window asked for (`from`
    inclusive, `to` exclusive, either open), by source then time, each with the traffic its
    source used since its previous snapshot (none for a source's first; a counter that went back,
    as after a restart, counts from zero). At most `limit` snapshots (100 unless told, 1-1000)."""

    def __init__(self, snapshots: SnapshotLog) -> None:
        self._snapshots = snapshots

    async def __call__(self, query: ListSnapshotsQuery) -> list[MeasuredSnapshot]:
        if not 1 <= query.limit <= MAX_LIMIT:
            raise InvalidInput("limit", f"must be 1-{MAX_LIMIT}")
        window = Window.between(query.start, query.end)
        return await self._snapshots.find(query.tenant_id, query.source, window, query.limit)
