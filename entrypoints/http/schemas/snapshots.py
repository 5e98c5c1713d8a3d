"""The bodies of server-load snapshots: one or a batch in, snapshots with their traffic out."""

from datetime import datetime
from typing import Annotated

import msgspec

from domain.snapshots import MAX_COUNT, MeasuredSnapshot
from entrypoints.http.schemas.common import Timestamp

Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]


class SnapshotBody(msgspec.Struct, kw_only=True):
    source: str
    at: Timestamp
    cpu_percent: Percent
    memory_percent: Percent
    memory_mb: Annotated[float, msgspec.Meta(ge=0)]
    traffic_bytes_total: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    concurrent_users: Count
    active_rooms: Count


class SnapshotBatchBody(msgspec.Struct):
    snapshots: list[SnapshotBody]


class SnapshotsStored(msgspec.Struct):
    inserted: int
    duplicates: int


class SnapshotOut(msgspec.Struct):
    source: str
    at: datetime
    cpu_percent: float
    memory_percent: float
    memory_mb: float
    traffic_bytes_total: int
    traffic_bytes: int  # since the previous snapshot of the source
    concurrent_users: int
    active_rooms: int

    @classmethod
    def of(cls, measured: MeasuredSnapshot) -> "SnapshotOut":
        s = measured.snapshot
        return cls(
            s.source,
            s.at,
            s.cpu_percent,
            s.memory_percent,
            s.memory_mb,
            s.traffic_bytes_total,
            measured.traffic_bytes,
            s.concurrent_users,
            s.active_rooms,
        )
