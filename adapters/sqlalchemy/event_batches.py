"""Appending a batch of events: the same steps on every SQL engine, in one transaction. A
BatchWriter sends each step's statement the engine's fastest way. On PostgreSQL the usual batch
is first tried without a transaction (`append_unless_changed`, an UnlockedBatchWriter): two
round trips instead of four, where a transaction's BEGIN and COMMIT are round trips of their
own; one when the process remembers the batch's sessions as its last batch of them left them
(asyncpg_events, remembered_sessions). SQLite runs a whole transaction in one hop to its thread,
so it has nothing to save."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from domain.events import (
    Admission,
    BatchOutcome,
    Event,
    count_into_sessions,
    ended_since,
    sort_batch,
)
from domain.session import Session
from domain.usage import Usage

Key = tuple[str, int]  # (session_id, sequence_no)


class BatchWriter(Protocol):
    async def lock_sessions(self, session_ids: set[str], metered: set[str]) -> dict[str, Session]:
        """The batch's sessions, locked (in id order, so that batches touching the same
        sessions never deadlock) so a concurrent exit waits until their usage is in. Usage is
        read only for the `metered` sessions: its totals are what the limit checks. Event gaps
        are not read: a batch does not need them, and finding them reads all of a session's
        events (a session that lost one would pay that on every batch)."""
        ...

    async def insert_counted(
        self, batch: list[Event], usage: dict[str, Usage], changed: list[Session]
    ) -> list[Key] | None:
        """Insert the events not stored yet. If that was all of them: count `usage` into
        `changed` as `count` does, and None. Else nothing is counted: the keys of those this
        call stored."""
        ...

    async def stored(self, keys: list[Key]) -> set[Key]:
        """Which of these keys are stored."""
        ...

    async def count(self, usage: dict[str, Usage], changed: list[Session]) -> None:
        """Add `usage` to the sessions' meters; write the EVENT_CHANGES of `changed`."""
        ...


class UnlockedBatchWriter(Protocol):
    # Whether `read_sessions` gave the sessions as this process remembers them, not as read now:
    # they may have changed since, which only a guarded write tells.
    recalled: bool

    async def read_sessions(self, session_ids: Sequence[str]) -> dict[str, tuple[Session, object]]:
        """The batch's sessions as they are, unlocked, with usage and without gaps (as
        `lock_sessions`), each with what tells whether it changed since."""
        ...

    async def insert_counted_unless_changed(
        self,
        batch: list[Event],
        usage: dict[str, Usage],
        changed: list[Session],
        read: dict[str, tuple[Session, object]],
    ) -> bool:
        """Insert the events and count `usage` into `changed` (as `insert_counted`), in one
        atomic step, only if every session `read` is still as it was read and no other writer
        holds it, and none of the events was stored before; else nothing (False)."""
        ...


async def append_unless_changed(
    writer: UnlockedBatchWriter,
    batch: Sequence[tuple[int, Event]],
    now: datetime,
    window: timedelta,
    admits: Admission | None,
) -> BatchOutcome | None:
    """`append_batch` without a transaction, in two statements instead of a transaction's four,
    for the usual batch: only numbers above its sessions' highest, none refused. Its sessions
    are read unlocked, the batch sorted and counted on them as `append_batch` does on locked
    ones, and written only if none of them changed meanwhile. None when the batch is not such
    a batch or a session changed, or when the sessions were recalled and the batch would write
    nothing: nothing is written, and the caller appends it the locked way (or, if recalled, tries
    again on them read afresh)."""
    read = await writer.read_sessions(sorted({e.session_id for _, e in batch}))
    found = {session_id: session for session_id, (session, _) in read.items()}
    sorted_batch = sort_batch(batch, found, now, window, admits)
    new = [e for _, e in sorted_batch.new]
    # Refused events may be duplicates (only a lookup tells), and so may numbers up to the
    # highest a session has.
    if sorted_batch.refused or any(
        e.sequence_no <= found[e.session_id].max_sequence_no for e in new
    ):
        return None
    if not new and writer.recalled:  # nothing to write, so no guard to tell they are current
        return None
    since = ended_since(found, new)  # as read, before the counting below changes them
    usage, repriced = count_into_sessions(found, new, now)
    changed = [found[session_id] for session_id in usage]
    if new and not await writer.insert_counted_unless_changed(new, usage, changed, read):
        return None
    rejections = sorted_batch.rejected(set())
    duplicates = len(batch) - len(new) - len(rejections)
    return BatchOutcome(len(new), duplicates, rejections, repriced, since)


async def append_batch(
    writer: BatchWriter,
    batch: Sequence[tuple[int, Event]],
    now: datetime,
    window: timedelta,
    admits: Admission | None,
) -> BatchOutcome:
    """EventLog.append's steps: lock the sessions, sort the batch (domain.events.sort_batch,
    again without what was stored before if the meter limit refused an event), insert what is
    new and count it, tell duplicates from refusals."""
    session_ids = {e.session_id for _, e in batch}
    metered = {e.session_id for _, e in batch if e.meters}
    found = await writer.lock_sessions(session_ids, metered)
    sorted_batch = sort_batch(batch, found, now, window, admits)
    if looked_up := sorted_batch.to_look_up():
        before = await writer.stored([(e.session_id, e.sequence_no) for e in looked_up])
        sorted_batch = sort_batch(batch, found, now, window, admits, before)
    new = [e for _, e in sorted_batch.new]
    inserted, repriced, since = 0, frozenset[str](), ended_since(found, new)
    if new:
        # Counted as if every new event were stored, in the insert's own step: the usual case.
        usage, repriced = count_into_sessions(found, new, now)
        stored = await writer.insert_counted(new, usage, [found[i] for i in usage])
        inserted = len(new)
        if stored is not None:  # some were stored already (a retry): count only the others
            inserted, repriced = await _count_stored(writer, session_ids, metered, new, stored, now)
    refused = [(e.session_id, e.sequence_no) for _, e, _ in sorted_batch.refused]
    rejections = sorted_batch.rejected(await writer.stored(refused) if refused else set())
    duplicates = len(batch) - inserted - len(rejections)
    return BatchOutcome(inserted, duplicates, rejections, repriced, since)


async def _count_stored(
    writer: BatchWriter,
    session_ids: set[str],
    metered: set[str],
    new: list[Event],
    stored: list[Key],
    now: datetime,
) -> tuple[int, frozenset[str]]:
    """Count the events of `new` whose keys this transaction `stored` into their sessions, read
    again: the copies read before counted all of `new`, a count the database did not keep."""
    found = await writer.lock_sessions(session_ids, metered)
    keys = set(stored)
    inserted = [e for e in new if (e.session_id, e.sequence_no) in keys]
    usage, repriced = count_into_sessions(found, inserted, now)
    if usage:
        await writer.count(usage, [found[session_id] for session_id in usage])
    return len(inserted), repriced
