"""Server-load snapshots: recorded one or a batch at a time, read back with their traffic."""

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody

from application.snapshots.list_snapshots import ListSnapshots, ListSnapshotsQuery
from application.snapshots.record_snapshots import RecordSnapshots, RecordSnapshotsCommand
from application.tenants.authenticate import Principal
from domain.snapshots import Snapshot
from domain.tenants import Role
from entrypoints.http.auth import needs
from entrypoints.http.openapi import rules_of
from entrypoints.http.schemas.common import From, Page, To
from entrypoints.http.schemas.snapshots import (
    SnapshotBatchBody,
    SnapshotBody,
    SnapshotOut,
    SnapshotsStored,
)


class SnapshotsController(Controller):
    path = "/snapshots"
    tags = ["snapshots"]
    opt = needs(Role.ADMIN)

    @post(
        "/",
        summary="Record one resource snapshot of a media server",
        operation_id="recordSnapshot",
        description=rules_of(RecordSnapshots),
        status_code=200,
    )
    async def record_one(
        self,
        data: JSONBody[SnapshotBody],
        caller: NamedDependency[Principal],
        record_snapshots: NamedDependency[RecordSnapshots],
    ) -> SnapshotsStored:
        return await _record(caller, record_snapshots, [data])

    @post(
        "/batch",
        summary="Record a batch of resource snapshots",
        operation_id="recordSnapshots",
        description=rules_of(RecordSnapshots),
        status_code=200,
    )
    async def record_batch(
        self,
        data: JSONBody[SnapshotBatchBody],
        caller: NamedDependency[Principal],
        record_snapshots: NamedDependency[RecordSnapshots],
    ) -> SnapshotsStored:
        return await _record(caller, record_snapshots, data.snapshots)

    @get(
        "/",
        summary="Snapshots with the traffic since each one's previous",
        operation_id="listSnapshots",
        description=rules_of(ListSnapshots),
    )
    async def list_snapshots(
        self,
        caller: NamedDependency[Principal],
        list_snapshots: NamedDependency[ListSnapshots],
        source: FromQuery[str | None] = None,
        start: From = None,
        end: To = None,
        limit: FromQuery[int | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Page[SnapshotOut]:
        query = ListSnapshotsQuery(caller.tenant.id, source, start, end, limit, cursor)
        return Page.of(await list_snapshots(query), SnapshotOut.of)


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
    recorded = await record_snapshots(RecordSnapshotsCommand(caller.tenant.id, snapshots))
    return SnapshotsStored(recorded.new, len(snapshots) - recorded.new)
