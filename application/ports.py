"""The ports: what the use cases need from storage and the outside world.

Whatever must be race-free is one method here, and its docstring is the contract that the
storage contract suite (tests/contract) proves on every adapter with concurrent callers.
"""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from domain.clock import as_utc
from domain.credits import Alert, Balance, LedgerEntry, Rate
from domain.events import BatchOutcome, Distribution, Event
from domain.livekit import LiveKitAccount, RoomEvent, TrackReport
from domain.plans import Plan, Registration, SessionLimit, Subscription
from domain.reports import ResourceActivity, UsageStats, WatchTime
from domain.rollups import Activity, Period, Rollup
from domain.session import Charge, Closing, Exit, Session, SessionStatus
from domain.snapshots import MeasuredSnapshot, Snapshot
from domain.staleness import Staleness
from domain.tenants import ApiKey, Tenant, TenantSettings


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


@dataclass(frozen=True)
class SessionFilter:
    kind: str | None = None
    resource_id: str | None = None
    subject_id: str | None = None
    status: SessionStatus | None = None
    started_from: datetime | None = None  # inclusive
    started_to: datetime | None = None  # exclusive


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

    async def usage_added(self, tenant_id: str, session_id: str) -> Session:
        """Apply Session.usage_added atomically: usage reached the session other than by an
        event or exit (a track's seconds), so an ended session is left pending a new settlement
        under a new revision. NotFound."""
        ...

    async def close(
        self,
        tenant_id: str,
        session_id: str,
        exit: Exit,
        rated_kinds: frozenset[str],
        now: datetime,
        window: timedelta,
    ) -> tuple[Session, Closing]:
        """End a session with `exit` (Session.close), atomically: of any number of concurrent
        callers exactly one closes an active session (or corrects a provisional end); the others
        get the stored session and REPLAY. The exit's usage is added only by the caller that
        changed the session. NotFound; InvalidInput if the exit is before the start."""
        ...

    async def time_out_idle(
        self,
        tenant_id: str,
        staleness: Staleness,
        limit: int,
        rated_kinds: frozenset[str] = frozenset(),
    ) -> list[Session]:
        """Close up to `limit` stale active sessions (Staleness.is_stale) as timed_out, ended at
        their last_seen_at; return only the sessions this call closed. A sign of life stored
        before the close moves the cutoff's verdict: a session seen after its cutoff is not
        closed, and none is closed at a last_seen_at older than one a caller was told of."""
        ...

    async def pending_charges(self, tenant_id: str, limit: int) -> list[Session]:
        """Closed sessions whose charge (or its latest correction) is not recorded yet: a crash
        between the two steps, or a correction whose settlement has not run."""
        ...


class EventLog(Protocol):
    async def append(
        self,
        tenant_id: str,
        events: Sequence[tuple[int, Event]],
        now: datetime,
        window: timedelta,
    ) -> BatchOutcome:
        """Store a batch of (position in the client's batch, event) in a bounded number of
        round trips. (session_id, sequence_no) is unique: one already stored, or repeated in the
        batch, is a duplicate and adds nothing, even with concurrent copies of the batch.
        Events of an unknown session are rejected as `session_not_found`; the others are taken
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


class RateRepository(Protocol):
    async def put(self, tenant_id: str, rate: Rate) -> None:
        """Create or replace the rate of `rate.kind`."""
        ...

    async def all(self, tenant_id: str) -> list[Rate]: ...


class CreditLedger(Protocol):
    async def grant(self, entry: LedgerEntry) -> tuple[LedgerEntry, bool]:
        """Record a grant once per idempotency key: (the entry, True), or, when the key is
        taken in the tenant, (the stored entry, False) and nothing recorded."""
        ...

    async def settle(
        self, tenant_id: str, session_id: str, revision: int, credits: int, at: datetime
    ) -> Charge | None:
        """Settle revision `revision` of a pending session at `credits`, atomically and at most
        once whatever the number of concurrent callers: what domain.charging.settle says (the
        first settlement a charge entry, later ones an adjustment of the difference; none for a
        difference of 0) dated `at`, the session's charge and its alert, and the session marked
        charged. None when the session is not pending at that revision (settled by another
        caller, or corrected again since: read it and settle the new revision)."""
        ...

    async def settled(self, tenant_id: str, session_id: str) -> Session:
        """The session as its settlement left it (NotFound if there is none)."""
        ...

    async def balance(self, tenant_id: str, subject_id: str) -> Balance:
        """The sums of the subject's ledger: the balance is always exactly their difference."""
        ...

    async def entries(
        self, tenant_id: str, subject_id: str, limit: int, after: str | None = None
    ) -> list[LedgerEntry]:
        """Up to `limit` entries, oldest first (by created_at, then id), after entry `after`."""
        ...

    async def alerts(self, tenant_id: str, limit: int) -> list[Alert]:
        """The newest alerts first."""
        ...


class PlanRepository(Protocol):
    async def put(self, tenant_id: str, plan: Plan) -> None:
        """Create or replace a plan; a new default plan makes the others non-default."""
        ...

    async def all(self, tenant_id: str) -> list[Plan]: ...


class SubscriptionRepository(Protocol):
    async def put(self, tenant_id: str, subscription: Subscription) -> None:
        """Set the subject's subscription, replacing any earlier one."""
        ...

    async def get(self, tenant_id: str, subject_id: str) -> Subscription | None: ...


class ResourceRegistry(Protocol):
    async def register(
        self,
        tenant_id: str,
        subject_id: str,
        resource_id: str,
        kind: str,
        at: datetime,
        monthly_limit: int | None,
    ) -> bool:
        """Register a resource for a subject once (False: it already was). With a limit, the
        count of the subject's registrations in `at`'s calendar month (UTC) and the insert are
        one atomic step: at the limit raise QuotaExceeded and store nothing."""
        ...

    async def count_in_month(self, tenant_id: str, subject_id: str, at: datetime) -> int: ...


@dataclass(frozen=True)
class Window:
    """Sessions that started (snapshots taken, …) in [start, end); either bound may be open."""

    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def between(cls, start: datetime | None, end: datetime | None) -> "Window":
        """The window a client asked for with `from` and `to`, both with an offset."""
        return cls(start and as_utc("from", start), end and as_utc("to", end))


class Reports(Protocol):
    """Figures computed where the data lives: no method loads every session into Python."""

    async def watch_time(self, tenant_id: str, resource_id: str, window: Window) -> list[WatchTime]:
        """Per subject (anonymous sessions excluded), over exited sessions of the resource."""
        ...

    async def resources(
        self, tenant_id: str, kind: str | None, window: Window
    ) -> list[ResourceActivity]:
        """Per resource with sessions started in the window, ordered by resource id."""
        ...

    async def usage_stats(self, tenant_id: str, subject_id: str, window: Window) -> UsageStats: ...

    async def active(self, tenant_id: str, resource_id: str | None) -> int: ...


class TenantRepository(Protocol):
    async def add(self, tenant: Tenant) -> None:
        """Store a new tenant; Conflict if the name is taken."""
        ...

    async def get(self, tenant_id: str) -> Tenant | None: ...

    async def get_by_name(self, name: str) -> Tenant | None: ...

    async def all(self) -> list[Tenant]: ...

    async def update_settings(self, tenant_id: str, settings: TenantSettings) -> Tenant: ...


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey) -> None: ...

    async def get_by_hash(self, secret_hash: str) -> ApiKey | None: ...


class StorageHealth(Protocol):
    async def ping(self) -> None:
        """Return when the storage answers; raise otherwise."""
        ...


# Everything that makes up a tenant's state, as an export carries it.
Record = (
    Tenant
    | ApiKey
    | Rate
    | Plan
    | Subscription
    | Registration
    | Session
    | Event
    | LedgerEntry
    | Alert
    | LiveKitAccount
    | Snapshot
)


class TenantArchive(Protocol):
    def export(self, tenant_id: str) -> AsyncIterator[Record]:
        """The tenant's whole state, streamed (never loaded whole), in an order an import can
        apply as it reads: the tenant, keys, rates, plans, subscriptions, registrations,
        sessions, events, ledger entries, alerts, LiveKit keys, snapshots."""
        ...

    async def restore(self, tenant_id: str, records: Sequence[Record]) -> int:
        """Store the records that are not there yet, by their natural keys, exactly as given:
        a session keeps its status, usage and charge; an event adds nothing to its session.
        Returns how many were new. A tenant whose name another tenant holds is a Conflict."""
        ...


class LiveKitAccounts(Protocol):
    async def add(self, account: LiveKitAccount) -> None:
        """Register an API key for a tenant, or replace its secret; Conflict if the key belongs
        to another tenant. The account's url replaces the stored one when given; None keeps it
        (a secret rotated without --url does not forget the server)."""
        ...

    async def get(self, api_key: str) -> LiveKitAccount | None: ...

    async def of_tenant(self, tenant_id: str) -> list[LiveKitAccount]:
        """The tenant's accounts, by API key."""
        ...

    async def set_url(self, tenant_id: str, api_key: str, url: str | None) -> LiveKitAccount:
        """Set (None: remove) the server URL of one of the tenant's keys; NotFound if the key
        is not the tenant's."""
        ...


class WebhookLog(Protocol):
    """Webhook ids already handled, so that a redelivery is recognised."""

    async def seen(self, tenant_id: str, webhook_id: str) -> bool: ...

    async def record(self, tenant_id: str, webhook_id: str, at: datetime) -> None:
        """Remember a handled webhook (again: nothing changes)."""
        ...


class WebhookVerifier(Protocol):
    def issuer(self, token: str) -> str | None:
        """The API key a token says it was signed with, before anything is verified."""
        ...

    def verify(self, body: str, token: str, account: LiveKitAccount) -> RoomEvent:
        """The event in `body`, if `token` is the account's valid, unexpired signature of exactly
        this body; Unauthorized otherwise."""
        ...


class TrackLog(Protocol):
    async def record(self, tenant_id: str, session_id: str, report: TrackReport) -> bool:
        """Merge what a webhook says of a track of the session (the first report of each end
        wins). When both ends are known, add the track's seconds to the session's usage under
        its meter, exactly once whoever completes it and whatever the session's status, in the
        same atomic step that marks it counted. True when this call added them.
        Each end reported for the first time is also appended to the session's events
        (domain.livekit.track_events: video_start, video_end, …), numbered after its highest
        sequence number, whatever the session's status."""
        ...

    async def open_tracks(self, tenant_id: str, session_id: str) -> list[TrackReport]:
        """The session's tracks published and not (yet) reported unpublished."""
        ...


class SnapshotLog(Protocol):
    async def add(self, tenant_id: str, snapshots: Sequence[Snapshot]) -> int:
        """Store the snapshots not stored yet ((source, at) is unique: a resent one is a
        duplicate); returns how many were new."""
        ...

    async def find(
        self, tenant_id: str, source: str | None, window: Window, limit: int
    ) -> list[MeasuredSnapshot]:
        """Snapshots taken in the window (by source, then time), each with the traffic since the
        previous snapshot of its source, computed where they are stored (see
        domain.snapshots.traffic_delta) — so a snapshot that arrives late or out of order changes
        the deltas around it as it should."""
        ...


class Retention(Protocol):
    """Deletes in bounded batches, so that no delete holds a table-wide lock or runs long."""

    async def delete_snapshots(self, tenant_id: str, taken_before: datetime, limit: int) -> int:
        """Delete up to `limit` of the tenant's snapshots taken before the cutoff; how many."""
        ...

    async def delete_events(self, tenant_id: str, before: datetime, limit: int) -> int:
        """Delete up to `limit` of the tenant's events that happened before the cutoff (their
        sessions keep the usage and counts they added); how many."""
        ...

    async def delete_rollups(
        self, tenant_id: str, period: Period, started_before: datetime, limit: int
    ) -> int:
        """Delete up to `limit` of the tenant's rollups of that period whose bucket started
        before the cutoff; how many buckets."""
        ...

    async def forget_webhooks(self, tenant_id: str, received_before: datetime, limit: int) -> int:
        """Forget up to `limit` of the tenant's handled webhook ids received before the cutoff;
        how many."""
        ...


class UsageSource(Protocol):
    """The raw data of a bucket, aggregated where it is stored (memory does not grow with the
    number of sessions or events in it)."""

    async def activity(self, tenant_id: str, start: datetime, end: datetime) -> list[Activity]:
        """Per kind and resource with anything in [start, end): sessions started and ended in
        it, the seconds of [started_at, ended_at or last_seen_at) inside it, events that
        happened in it, the usage of sessions that ended in it, and the seconds of closed tracks
        inside it by meter. Ordered by kind, then resource."""
        ...

    async def earliest_active_start(self, tenant_id: str) -> datetime | None:
        """When the oldest session still active started (its buckets are not final yet)."""
        ...


class RollupRepository(Protocol):
    async def replace(self, tenant_id: str, rollup: Rollup) -> None:
        """Store the bucket's rollup in place of whatever was stored for it, as one step: a
        reader sees the old bucket or the new one, never a mix."""
        ...

    async def find(
        self,
        tenant_id: str,
        period: Period,
        window: Window,
        kind: str | None = None,
        resource_id: str | None = None,
    ) -> list[Rollup]:
        """The buckets rolled up whose start is in the window, oldest first, with the activity
        of that kind and resource only (when given)."""
        ...


@dataclass(frozen=True)
class RollupLease:
    """A runner's exclusive hold on a tenant's rollups, and where the previous run said the
    next one must start (None: never rolled up)."""

    holder: str
    resume_from: datetime | None


class RollupLeases(Protocol):
    async def acquire(
        self, tenant_id: str, holder: str, now: datetime, until: datetime
    ) -> RollupLease | None:
        """Hold the tenant's rollups until `until`, unless another holder's lease is still
        running at `now` (then None). Of concurrent callers at most one holds it."""
        ...

    async def renew(self, tenant_id: str, holder: str, until: datetime) -> bool:
        """Extend the holder's lease; False when it has lost it."""
        ...

    async def release(self, tenant_id: str, holder: str, resume_from: datetime) -> None:
        """End the holder's lease and remember where the next run starts."""
        ...

    async def rewind(self, tenant_id: str, to: datetime) -> None:
        """Late data changed the tenant's hours from `to` on: the next run that acquires the
        lease resumes no later than `to`, even when a run holding it now releases it with a
        later resume point. Concurrent rewinds keep the earliest. A tenant never rolled up has
        nothing to rewind."""
        ...


class LiveKitUnavailable(Exception):
    """A LiveKit server did not answer, or answered with an error (a refused key included):
    what it would have said is unknown. `detail` is one line for an operator (the server's URL
    aside)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RoomService(Protocol):
    async def participants(self, account: LiveKitAccount, room: str) -> set[str] | None:
        """The sids of the participants in the room now, asked of the account's server (which
        must have a url) with its key; None when the server has no such room. Sids, not
        identities: someone who left and joined again is a new participant (a new stay), so an
        old stay of theirs must not look present. LiveKitUnavailable when the server does not
        answer in a few seconds or answers with an error."""
        ...
