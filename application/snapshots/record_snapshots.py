"""Admins (or a collector on the media server) record resource snapshots, one or a batch."""

from collections.abc import Sequence

from application.snapshots.ports import SnapshotLog
from domain.errors import InvalidInput
from domain.snapshots import Snapshot

MAX_BATCH = 1000


class RecordSnapshots:
    def __init__(self, snapshots: SnapshotLog) -> None:
        self._snapshots = snapshots

    async def __call__(self, tenant_id: str, snapshots: Sequence[Snapshot]) -> int:
        """How many were new (a resent snapshot of the same source and instant is not)."""
        if len(snapshots) > MAX_BATCH:
            raise InvalidInput("snapshots", f"at most {MAX_BATCH} in one batch")
        return await self._snapshots.add(tenant_id, snapshots)
