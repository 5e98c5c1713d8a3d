"""The sessions as this process last wrote them with a batch of events (PostgreSQL), each with
the Version it left them at: the next batch of a session starts from there, without reading it.

Only a hint: the batch's write is guarded by that Version (asyncpg_events), so a session another
writer changed since (an exit, a heartbeat, another worker's batch, the reaper, an erasure) is
not written as remembered; the batch is then read afresh and written as before. Kept for a
short while and a bounded number of sessions: what a client sends now, not what it sent once."""

import copy
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence

from domain.session import Session

SessionKey = tuple[str, str]  # (tenant_id, session_id)


class RememberedSessions:
    def __init__(
        self,
        capacity: int = 4096,
        seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = capacity
        self._seconds = seconds
        self._clock = clock
        self._kept: OrderedDict[SessionKey, tuple[float, Session, object]] = OrderedDict()

    def recall(
        self, tenant_id: str, session_ids: Sequence[str]
    ) -> dict[str, tuple[Session, object]] | None:
        """Copies of the sessions of these ids with their Versions, if every one of them is
        remembered; else None (the batch reads them all, in one statement anyway)."""
        now = self._clock()
        found = {}
        for session_id in session_ids:
            kept = self._kept.get((tenant_id, session_id))
            if kept is None or now - kept[0] > self._seconds:
                return None
            # A copy: the batch counts its events into the sessions it was given.
            found[session_id] = (copy.deepcopy(kept[1]), kept[2])
        return found

    def keep(self, tenant_id: str, written: Iterable[tuple[Session, object]]) -> None:
        """These sessions as just written, each at the Version the write left it."""
        now = self._clock()
        for session, version in written:
            key = (tenant_id, session.id)
            self._kept[key] = (now, session, version)
            self._kept.move_to_end(key)
        while len(self._kept) > self._capacity:
            self._kept.popitem(last=False)

    def forget(self, tenant_id: str, versions: Mapping[str, object]) -> None:
        """The sessions of these ids, if remembered at these Versions (a write made on them was
        refused); one remembered since at another (a concurrent request wrote it) stays."""
        for session_id, version in versions.items():
            key = (tenant_id, session_id)
            kept = self._kept.get(key)
            if kept is not None and kept[2] == version:
                del self._kept[key]
