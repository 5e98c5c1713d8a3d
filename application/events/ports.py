"""The ports of the events area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from domain.events import Admission, BatchOutcome, Distribution, Event


class EventLog(Protocol):
    async def append(
        self,
        tenant_id: str,
        events: Sequence[tuple[int, Event]],
        now: datetime,
        window: timedelta,
        admits: Admission | None = None,
    ) -> BatchOutcome:
        """Store a batch of (position in the client's batch, event) in a bounded number of
        round trips. (session_id, sequence_no) is unique: one already stored, or repeated in the
        batch, is a duplicate and adds nothing, even with concurrent copies of the batch.
        Events of an unknown session are rejected as `session_not_found`, those the caller may
        not write (`admits`, judged on the stored session) as it says; the others are taken
        or refused as their session says at the moment they are counted (Session.refusal:
        `session_ended`, `late`). What is taken is counted by Session.record_events in the same
        atomic step: meters add to the usage, counters and last_seen_at move, a provisional end
        moves, and an ended session whose price may have changed is left pending a settlement
        (its id in the outcome's `repriced`) — so a concurrent exit prices the session with
        these meters or without them, never half."""
        ...

    async def find(
        self,
        tenant_id: str,
        session_id: str,
        limit: int,
        after_sequence_no: int = 0,
        type: str | None = None,
        label: str | None = None,
    ) -> list[Event]:
        """Up to `limit` events of the session in sequence order, after `after_sequence_no`."""
        ...

    async def distribution(self, tenant_id: str, session_id: str, field: str) -> Distribution:
        """Counts of the session's events by the value of `field` (label, type or category);
        events without a value are not counted."""
        ...
