from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody

from application.snapshots.list_snapshots import ListSnapshots
from application.snapshots.record_snapshots import RecordSnapshots
from application.tenants.authenticate import Principal
from domain.snapshots import Snapshot
from domain.tenants import Role
from entrypoints.http.auth import current_principal, requires
from entrypoints.http.schemas import (
    From,
    SnapshotBatchBody,
    SnapshotBody,
    SnapshotOut,
    SnapshotPage,
    SnapshotsStored,
    To,
)


class SnapshotController(Controller):
    path = "/v1/snapshots"
    tags = ["snapshots"]
    guards = [requires(Role.ADMIN)]
    dependencies = {"caller": current_principal}

    @post("/", summary="Record one resource snapshot of a media server", status_code=200)
    async def record_one(
        self,
        data: JSONBody[SnapshotBody],
        caller: NamedDependency[Principal],
        record_snapshots: NamedDependency[RecordSnapshots],
    ) -> SnapshotsStored:
        return await _record(caller, record_snapshots, [data])

    @post("/batch", summary="Record a batch of resource snapshots", status_code=200)
    async def record_batch(
        self,
        data: JSONBody[SnapshotBatchBody],
        caller: NamedDependency[Principal],
        record_snapshots: NamedDependency[RecordSnapshots],
    ) -> SnapshotsStored:
        return await _record(caller, record_snapshots, data.snapshots)

    @get("/", summary="Snapshots with the traffic since each one's previous")
    async def list_snapshots(
        self,
        caller: NamedDependency[Principal],
        list_snapshots: NamedDependency[ListSnapshots],
        source: FromQuery[str | None] = None,
        start: From = None,
        end: To = None,
        limit: FromQuery[int] = 100,
    ) -> SnapshotPage:
        found = await list_snapshots(caller.tenant.id, source, start, end, limit)
        return SnapshotPage([SnapshotOut.of(m) for m in found])


async def _record(
    caller: Principal, record_snapshots: RecordSnapshots, bodies: list[SnapshotBody]
) -> SnapshotsStored:
    snapshots = [
        Snapshot(
            b.source,
            b.at,
            b.cpu_percent,
            b.memory_percent,
            b.memory_mb,
            b.traffic_bytes_total,
            b.concurrent_users,
            b.active_rooms,
        )
        for b in bodies
    ]
    inserted = await record_snapshots(caller.tenant.id, snapshots)
    return SnapshotsStored(inserted, len(snapshots) - inserted)
