"""The ports of the data rights area: what its use cases need from storage.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from domain.erasure import Forgetting

Done = TypeVar("Done")


@dataclass(frozen=True)
class SessionsOf:
    """Whose or what sessions: a subject's or a resource's (exactly one of the two)."""

    subject_id: str | None = None
    resource_id: str | None = None


@dataclass(frozen=True)
class SessionPlace:
    """A session's place in start order (the order the stores' indexes keep): where a walk
    through a subject's or resource's sessions stopped."""

    started_at: datetime
    id: str


@dataclass(frozen=True)
class EndPlace:
    """A session's place in end order: where a walk through expired sessions stopped (those
    before it are not listed again, deleted or kept)."""

    ended_at: datetime
    id: str


@dataclass(frozen=True)
class Erased:
    """What one erasure step took personal data out of."""

    sessions: int = 0
    events: int = 0  # that held data or a label
    errors: int = 0
    sales: int = 0

    def __add__(self, other: "Erased") -> "Erased":
        return Erased(
            self.sessions + other.sessions,
            self.events + other.events,
            self.errors + other.errors,
            self.sales + other.sales,
        )


@dataclass(frozen=True)
class Removed:
    """What one deletion step removed, and the sessions it kept because a sale or a charge
    names them."""

    sessions: int = 0
    events: int = 0
    kept: frozenset[str] = frozenset()


class Erasure(Protocol):
    """Erases and deletes sessions and what hangs off them (events, usage, errors, sales), a
    bounded step at a time. The step that changes a session (`erase_sessions`,
    `delete_sessions`) holds what event ingest holds on it (SQL: the session's row lock; MongoDB:
    a write guarded on what was read), so an event racing it is stored either before the step
    (and erased or deleted by it) or after (on MongoDB, a deleted session's racing event may be
    left behind without its session: no listing reaches it, retention removes it by age)."""

    async def sessions(
        self, tenant_id: str, of: SessionsOf, limit: int, after: SessionPlace | None = None
    ) -> list[SessionPlace]:
        """Up to `limit` of the tenant's sessions of that subject or resource, in start order
        (started_at, then id), after `after`."""
        ...

    async def billed(self, tenant_id: str, session_ids: Sequence[str]) -> set[str]:
        """Which of these sessions a sale or a ledger entry names, or whose charge is pending
        or charged: the books keep them."""
        ...

    async def expired_sessions(
        self,
        tenant_id: str,
        ended_before: datetime,
        limit: int,
        counted: frozenset[str],
        after: EndPlace | None = None,
    ) -> list[EndPlace]:
        """Up to `limit` of the tenant's sessions that ended before the cutoff (and after
        `after`), are not billed (see `billed`) and are not a subject's session of a kind in
        `counted` (a limit counts it), oldest end first."""
        ...

    async def clear_events(self, tenant_id: str, session_ids: Sequence[str], limit: int) -> int:
        """Clear `data` and `label` of up to `limit` events of these sessions that hold either;
        how many."""
        ...

    async def delete_events(self, tenant_id: str, session_ids: Sequence[str], limit: int) -> int:
        """Delete up to `limit` events of these sessions; how many."""
        ...

    async def erase_sessions(
        self, tenant_id: str, session_ids: Sequence[str], forgetting: Forgetting
    ) -> Erased:
        """One atomic step: each of these sessions that `forgetting.erase` changes is saved so,
        and with it its events left holding data or a label are cleared, its errors lose what
        `domain.erasure.erased_error` takes and its sales their personal attributes (only those
        columns are written: a settlement moving meanwhile is kept). Of concurrent callers on
        one session exactly one erases it; the counts are of what this call changed (errors and
        sales: those of the sessions it erased)."""
        ...

    async def delete_sessions(self, tenant_id: str, session_ids: Sequence[str]) -> Removed:
        """One atomic step: delete these sessions with their events, usage and LiveKit tracks,
        except those billed (see `billed`, decided in the step), which are kept and named.
        Of concurrent callers each session is deleted and counted once."""
        ...

    async def move_subject(
        self, tenant_id: str, subject_id: str, pseudonym: str, limit: int
    ) -> int:
        """Move up to `limit` of the subject's ledger entries, alerts, subscription (with its
        history), resource registrations and refused-start counts to the pseudonym (balances,
        limits, quotas and the trial report follow them); how many. Moved grants lose their
        idempotency keys: a key often names the person, and a grant sent with it afterwards is
        for someone new."""
        ...

    async def pseudonym_for(self, tenant_id: str, subject_id: str, drawn: str, at: datetime) -> str:
        """The pseudonym the subject's erasure gives it: the one an erasure of it that did not
        finish gave (it failed or died after some of the subject's records took it), else
        `drawn`, kept from `at` until `finished`. Concurrent callers all get the same one."""
        ...

    async def unfinished(
        self, tenant_id: str, started_before: datetime, limit: int, after: str | None = None
    ) -> list[str]:
        """Up to `limit` subjects whose erasure, begun before `started_before`, is not finished
        (it failed, or its process died, before its ledger moved), in order, after `after`."""
        ...

    async def kept(self, tenant_id: str, subject_id: str) -> str | None:
        """The pseudonym kept for the subject's unfinished erasure, if there is one."""
        ...

    async def finished(self, tenant_id: str, subject_id: str, pseudonym: str) -> None:
        """The subject's erasure under `pseudonym` is done: that pseudonym is no longer kept
        (nothing stored links the subject to it any more), and a later erasure draws a new one.
        Another pseudonym kept for the subject (a newer erasure's) stays."""
        ...

    async def with_ledgers_held(
        self, tenant_id: str, subject_ids: Collection[str], work: Callable[[], Awaitable[Done]]
    ) -> Done:
        """Run `work` holding these subjects' ledgers, and return what it returns. Meanwhile no
        settlement of a session of theirs (CreditLedger.settle, settle_many) decides from their
        balances: it waits for `work` to end, a few seconds at most, then claims nothing
        (CreditLedger.settle raises LedgerHeld; the reaper settles it later). Two holders
        of one subject take turns; one that waited 40 s for another raises Contended. A holder
        that dies gives its ledgers back (PostgreSQL: with its connection; SQLite and MongoDB:
        when its lease runs out, 10 minutes after it last renewed it while working)."""
        ...

    async def delete_rollups(self, tenant_id: str, resource_id: str, limit: int) -> int:
        """Remove a bounded part of the resource's rolled-up activity (at most `limit` rows of
        one bucket and kind, or the rows of `limit` buckets; the buckets' server load stays);
        how many (bucket, kind) rows went. Funnels' days lose the resource's rows and are no
        longer final (the next rollup recounts them from the events left)."""
        ...
