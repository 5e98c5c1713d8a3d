"""Appending a batch of events: the same steps on every SQL engine, in one transaction. A
BatchWriter sends each step's statement the engine's fastest way."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from domain.events import Admission, BatchOutcome, Event, count_into_sessions, sort_batch
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

    async def insert(self, batch: list[Event]) -> list[Key]:
        """Insert the events not stored yet; the keys of those this call stored."""
        ...

    async def stored(self, keys: list[Key]) -> set[Key]:
        """Which of these keys are stored."""
        ...

    async def count(self, usage: dict[str, Usage], changed: list[Session]) -> None:
        """Add `usage` to the sessions' meters; write the EVENT_CHANGES of `changed`."""
        ...


async def append_batch(
    writer: BatchWriter,
    batch: Sequence[tuple[int, Event]],
    now: datetime,
    window: timedelta,
    admits: Admission | None,
) -> BatchOutcome:
    """EventLog.append's steps: lock the sessions, sort the batch (domain.events.sort_batch),
    insert what is new, tell duplicates from refusals, count what was stored."""
    metered = {e.session_id for _, e in batch if e.meters}
    found = await writer.lock_sessions({e.session_id for _, e in batch}, metered)
    sorted_batch = sort_batch(batch, found, now, window, admits)
    new = {(e.session_id, e.sequence_no): e for _, e in sorted_batch.new}
    inserted = [new[key] for key in await writer.insert(list(new.values()))] if new else []
    refused = [(e.session_id, e.sequence_no) for _, e, _ in sorted_batch.refused]
    rejections = sorted_batch.rejected(await writer.stored(refused) if refused else set())
    usage, repriced = count_into_sessions(found, inserted, now)
    if usage:
        await writer.count(usage, [found[session_id] for session_id in usage])
    duplicates = len(batch) - len(inserted) - len(rejections)
    return BatchOutcome(len(inserted), duplicates, rejections, repriced)
