"""Read snapshots back with their traffic."""

from dataclasses import dataclass
from datetime import datetime

from application.pagination import Page, check_limit, decode_cursor, page_of
from application.ports import Window
from application.snapshots.ports import SnapshotLog, SnapshotPlace
from domain.clock import as_utc
from domain.errors import InvalidInput
from domain.snapshots import MeasuredSnapshot


@dataclass(frozen=True)
class ListSnapshotsQuery:
    tenant_id: str
    source: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int | None = None
    cursor: str | None = None


class ListSnapshots:
    """Admins read snapshots back, of one source or all, taken in the window asked for (`from`
    inclusive, `to` exclusive, either open), by source then time, each with the traffic its
    source used since its previous snapshot (none for a source's first; a counter that went back,
    as after a restart, counts from zero). One page at a time: up to `limit` snapshots (default
    50, at most 500), and a cursor for the next page while there are more."""

    def __init__(self, snapshots: SnapshotLog) -> None:
        self._snapshots = snapshots

    async def __call__(self, query: ListSnapshotsQuery) -> Page[MeasuredSnapshot]:
        size = check_limit(query.limit)
        after = _place(query.cursor) if query.cursor else None
        window = Window.between(query.start, query.end)
        rows = await self._snapshots.find(query.tenant_id, query.source, window, size + 1, after)
        return page_of(rows, size, lambda m: [m.snapshot.source, m.snapshot.at.isoformat()])


def _place(cursor: str) -> SnapshotPlace:
    source, at = decode_cursor(cursor, 2)
    try:
        if not isinstance(source, str):
            raise TypeError(source)
        return SnapshotPlace(source, as_utc("cursor", datetime.fromisoformat(at)))
    except (TypeError, ValueError, InvalidInput):
        raise InvalidInput("cursor", "is not a cursor this service returned") from None
