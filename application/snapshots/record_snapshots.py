"""Record media servers' resource snapshots."""

from collections.abc import Sequence
from dataclasses import dataclass

from application.snapshots.ports import SnapshotLog
from domain.errors import InvalidInput
from domain.snapshots import Snapshot

MAX_BATCH = 1000


@dataclass(frozen=True)
class RecordSnapshotsCommand:
    tenant_id: str
    snapshots: Sequence[Snapshot]


@dataclass(frozen=True)
class RecordedSnapshots:
    new: int  # the others were stored already


class RecordSnapshots:
    """Admins (or a collector on the media server) record resource snapshots, one or a batch of
    at most 1000. A snapshot resent (the same source and instant) is already stored and adds
    nothing; the answer says how many were new."""

    def __init__(self, snapshots: SnapshotLog) -> None:
        self._snapshots = snapshots

    async def __call__(self, command: RecordSnapshotsCommand) -> RecordedSnapshots:
        if len(command.snapshots) > MAX_BATCH:
            raise InvalidInput("snapshots", f"at most {MAX_BATCH} in one batch")
        return RecordedSnapshots(await self._snapshots.add(command.tenant_id, command.snapshots))
