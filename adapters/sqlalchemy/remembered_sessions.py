"""The sessions as this process last wrote them by a start or a batch of events (PostgreSQL),
each with the Version it left them at: the session's next batch, exit or sign of life starts
from there, without reading it (asyncpg_events, sessions.SqlSessionRepository). An exit or a
sign of life forgets the session: the next batch reads it rather than be refused first.

Only a hint: each write is guarded by that Version, so a session another writer changed since
(another worker, the reaper, an erasure) is not written as remembered; it is then read afresh
and written as before. A session refused twice in a row as remembered is contested: for a while
it is neither recalled nor remembered, so that a client whose requests reach several workers in
turn pays two refused writes a while, not one a request; one refused now and then keeps being
remembered. Kept for a short while and a bounded number of sessions: what a client sends now,
not what it sent once."""

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

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
        self._refused: OrderedDict[SessionKey, float] = OrderedDict()  # last refused, when
        self._contested: OrderedDict[SessionKey, float] = OrderedDict()  # since when

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
            found[session_id] = (kept[1].copy(), kept[2])
        return found

    def keep(
        self, tenant_id: str, written: Iterable[tuple[Session, object]], recalled: bool
    ) -> None:
        """These sessions as just written, each at the Version the write left it (`recalled`:
        by a write made on them as remembered); not those contested lately."""
        now = self._clock()
        for session, version in written:
            key = (tenant_id, session.id)
            if _lately(self._contested, key, now, self._seconds):
                continue
            if recalled:
                self._refused.pop(key, None)
            self._kept[key] = (now, session, version)
            self._kept.move_to_end(key)
        _bounded(self._kept, self._capacity)

    def forget(self, tenant_id: str, session_ids: Iterable[str]) -> None:
        """These sessions were written otherwise (a batch the locked way, an exit, a sign of
        life): what is kept of them is past."""
        for session_id in session_ids:
            self._kept.pop((tenant_id, session_id), None)

    def refused(self, tenant_id: str, recalled: Mapping[str, object]) -> None:
        """A write made on these sessions as remembered at these Versions was refused: they
        changed since. Forgotten; contested if their last such write was refused too. One
        remembered since at another Version (a concurrent request of this process wrote it)
        stays as it is: this process is what changed it."""
        now = self._clock()
        for session_id, version in recalled.items():
            key = (tenant_id, session_id)
            kept = self._kept.get(key)
            if kept is not None and kept[2] != version:
                continue
            self._kept.pop(key, None)
            if _lately(self._refused, key, now, self._seconds):
                self._contested[key] = now
                self._contested.move_to_end(key)
            self._refused[key] = now
            self._refused.move_to_end(key)
        _bounded(self._refused, self._capacity)
        _bounded(self._contested, self._capacity)


def _lately(
    entries: OrderedDict[SessionKey, float], key: SessionKey, now: float, seconds: float
) -> bool:
    since = entries.get(key)
    return since is not None and now - since <= seconds


def _bounded(entries: OrderedDict[SessionKey, Any], capacity: int) -> None:
    """The least recently set entries dropped, down to `capacity`."""
    while len(entries) > capacity:
        entries.popitem(last=False)
