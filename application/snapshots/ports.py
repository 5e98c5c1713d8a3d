"""The ports of the snapshots area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from application.ports import Window
from domain.snapshots import MeasuredSnapshot, Snapshot


@dataclass(frozen=True)
class SnapshotPlace:
    """Where a listing of snapshots stopped: the last one's source and time."""

    source: str
    at: datetime


class SnapshotLog(Protocol):
    async def add(self, tenant_id: str, snapshots: Sequence[Snapshot]) -> int:
        """Store the snapshots not stored yet ((source, at) is unique: a resent one is a
        duplicate); returns how many were new."""
        ...

    async def find(
        self,
        tenant_id: str,
        source: str | None,
        window: Window,
        limit: int,
        after: SnapshotPlace | None = None,
    ) -> list[MeasuredSnapshot]:
        """Up to `limit` snapshots taken in the window (by source, then time), after `after`,
        each with the traffic since the previous snapshot of its source (that one may come
        before the window or `after`), computed where they are stored (see
        domain.snapshots.traffic_delta) — so a snapshot that arrives late or out of order changes
        the deltas around it as it should."""
        ...
