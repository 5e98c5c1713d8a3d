from collections.abc import Sequence

from adapters.memory.store import MemoryStore
from application.ports import Window
from application.snapshots.ports import SnapshotLog, SnapshotPlace
from domain.snapshots import MeasuredSnapshot, Snapshot, traffic_delta


class MemorySnapshotLog(SnapshotLog):
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def add(self, tenant_id: str, snapshots: Sequence[Snapshot]) -> int:
        new = 0
        for snapshot in snapshots:
            key = (tenant_id, snapshot.source, snapshot.at)
            if key not in self._store.snapshots:
                self._store.snapshots[key] = snapshot
                new += 1
        return new

    async def find(
        self,
        tenant_id: str,
        source: str | None,
        window: Window,
        limit: int,
        after: SnapshotPlace | None = None,
    ) -> list[MeasuredSnapshot]:
        found: list[MeasuredSnapshot] = []
        previous: dict[str, int] = {}
        for (tenant, _, _), snapshot in sorted(self._store.snapshots.items()):
            if tenant != tenant_id or source not in (None, snapshot.source):
                continue
            delta = traffic_delta(previous.get(snapshot.source), snapshot.traffic_bytes_total)
            previous[snapshot.source] = snapshot.traffic_bytes_total
            inside = (
                (window.start is None or window.start <= snapshot.at)
                and (window.end is None or snapshot.at < window.end)
                and (after is None or (snapshot.source, snapshot.at) > (after.source, after.at))
            )
            if inside:
                found.append(MeasuredSnapshot(snapshot, delta))
        return found[:limit]
