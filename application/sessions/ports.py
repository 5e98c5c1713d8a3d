"""The ports of the sessions area: what its use cases need from storage and the outside world.

Whatever must be race-free is one method here; its docstring is the contract that the storage
contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from domain.charging import ChargeOnClose
from domain.plans import SessionLimit
from domain.session import Closing, Exit, Session, SessionStatus, WriteCheck
from domain.staleness import Staleness


@dataclass(frozen=True)
class SessionFilter:
    kind: str | None = None
    resource_id: str | None = None
    subject_id: str | None = None
    client_key: str | None = None  # an anonymous browser's or device's sessions
    status: SessionStatus | None = None
    started_from: datetime | None = None  # inclusive
    started_to: datetime | None = None  # exclusive
    # Declared dimensions' values by key, all to match: an attribute's value as
    # domain.rollups.dimensions_of spells it (a string as it is; a number or boolean as JSON text,
    # 7, 1.5, true). A session without the attribute never matches.
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionPosition:
    """Where a newest-first listing of sessions stopped: the last session returned."""

    started_at: datetime
    id: str


class SessionRepository(Protocol):
    async def add(self, session: Session, limit: SessionLimit | None = None) -> bool:
        """Store a new session. False, storing nothing, when its id is taken in its tenant
        (concurrent adds of one id: exactly one returns True). With a limit, count the
        subject's sessions of the limit's kinds on the resource and the insert as one atomic
        step: at `limit.limit` sessions raise SessionLimitReached and store nothing, so of N
        concurrent starts for the last slot exactly one succeeds."""
        ...

    async def count_started(
        self, tenant_id: str, subject_id: str, resource_id: str, kinds: frozenset[str]
    ) -> int:
        """Sessions of these kinds the subject has started on the resource, whatever their end."""
        ...

    async def existing(self, tenant_id: str, session_ids: Collection[str]) -> set[str]:
        """Which of these ids name a session of the tenant."""
        ...

    async def get(self, tenant_id: str, session_id: str) -> Session | None:
        """The session with its usage and event gaps, or None (also for another tenant's id)."""
        ...

    async def find(
        self,
        tenant_id: str,
        where: SessionFilter,
        limit: int,
        after: SessionPosition | None = None,
    ) -> list[Session]:
        """Up to `limit` sessions, newest first (started_at, then id, descending), after `after`."""
        ...

    async def heartbeat(self, tenant_id: str, session_id: str, at: datetime) -> Session:
        """Move last_seen_at forward to `at` (never back). NotFound; Conflict if ended."""
        ...

    async def sign_of_life(
        self, tenant_id: str, session_id: str, at: datetime, now: datetime, window: timedelta
    ) -> Session:
        """Apply Session.sign_of_life atomically (a concurrent close or reaper sees it before
        or after, never half): an active session's last_seen_at moves forward to `at` (never
        past now), a provisional end later evidence may move. NotFound."""
        ...

    async def close(
        self,
        tenant_id: str,
        session_id: str,
        exit: Exit,
        rated_kinds: frozenset[str],
        now: datetime,
        window: timedelta,
        check: WriteCheck | None = None,
        charge: ChargeOnClose | None = None,
    ) -> tuple[Session, Closing]:
        """End a session with `exit` (Session.close), atomically: of any number of concurrent
        callers exactly one closes an active session (or corrects a provisional end); the others
        get the stored session and REPLAY. The exit's usage is added only by the caller that
        changed the session. NotFound; InvalidInput if the exit is before the start; what
        `check` raises, judging the stored session, before anything changes.

        With `charge`, a store may settle the first charge of the session it closes (or
        corrects) in the same atomic step, as CreditLedger.settle would and taking turns with
        the subject's other settlements (`ChargeOnClose.settlement`, from the balance read under
        the subject's turn): the session then comes back charged. A store that does not, or
        whose subject's turn is taken at that moment, leaves it pending for DeductCredits."""
        ...

    async def time_out_idle(
        self,
        tenant_id: str,
        staleness: Staleness,
        limit: int,
        rated_kinds: frozenset[str],
        now: datetime,
        window: timedelta,
    ) -> list[Session]:
        """Close up to `limit` stale active sessions (Staleness.is_stale) as timed_out, ended at
        their last_seen_at; return only the sessions this call closed. A sign of life stored
        before the close moves the cutoff's verdict: a session seen after its cutoff is not
        closed, and none is closed at a last_seen_at older than one a caller was told of.
        Stored events not yet counted into their sessions (an append that died halfway, where a
        store has no transaction) are counted first, decided at `now` within the late-data
        `window` as the append would have decided them."""
        ...

    async def pending_charges(
        self, tenant_id: str, limit: int, after: str | None = None
    ) -> list[Session]:
        """Closed sessions whose charge (or its latest correction) is not recorded yet: a crash
        between the two steps, or a correction whose settlement has not run. Up to `limit`, in
        id order, after the id `after` if given."""
        ...


class EndsWithSession(Protocol):
    async def follow(self, session: Session) -> Session | None:
        """What ends with the session takes the end an exit left it (closed, corrected or
        replayed): a LiveKit stay's tracks. The session as settled again, if that changed its
        usage."""
        ...
