"""Admins read snapshots back with the traffic each period used."""

from datetime import datetime

from application.ports import Window
from application.snapshots.ports import SnapshotLog
from domain.errors import InvalidInput
from domain.snapshots import MeasuredSnapshot

MAX_LIMIT = 1000


class ListSnapshots:
    def __init__(self, snapshots: SnapshotLog) -> None:
        self._snapshots = snapshots

    async def __call__(
        self,
        tenant_id: str,
        source: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> list[MeasuredSnapshot]:
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput("limit", f"must be 1-{MAX_LIMIT}")
        return await self._snapshots.find(tenant_id, source, Window.between(start, end), limit)
