"""Close the sessions whose client stopped sending signs of life."""

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from application.credits.deduct_credits import DeductCredits
from application.livekit.end_stays_in_finished_rooms import EndStaysInFinishedRooms, Swept
from application.livekit.ports import LiveKitAccounts
from application.ports import Clock
from application.reports.ports import Reports
from application.sessions.ports import SessionRepository
from application.tenants.ports import TenantRepository
from application.tenants.tenant_jobs import TenantFailure, chosen_tenants, each_tenant
from domain.session import ChargeState
from domain.staleness import Staleness
from domain.tenants import Tenant

# Sessions closed, and then charged, per storage call: bounded so a backlog never becomes one huge
# transaction.
BATCH_SIZE = 500


@dataclass(frozen=True)
class ReapStaleSessionsCommand:
    tenant_name: str | None = None  # None: every tenant


@dataclass(frozen=True)
class Reaped:
    closed: int = 0
    failures: list[TenantFailure] = field(default_factory=list)
    # The sessions closed, counted by (kind, status), for the server's metrics.
    closed_by: dict[tuple[str, str], int] = field(default_factory=dict)
    active: int = 0  # sessions still active afterwards, in the tenants reaped


class ReapStaleSessions:
    """Close every active session whose client stopped sending signs of life, where it was last
    seen (`domain.session.Session.time_out`: ended at its `last_seen_at`, so no time is
    invented), and charge it; settle the charges left pending (by a crash, or by a correction).

    The cutoffs are `domain.staleness.Staleness.of`: a session goes idle after its kind's
    timeout (the tenant's `idle_timeouts`, in seconds or null for never; a kind not listed
    after `idle_timeout_seconds`, 300 unless set), and any session still active
    `max_session_seconds` after its start (a day unless set; null: no cap) is closed however
    alive it is. LiveKit stays (kind `livekit`) send no heartbeat, so they never go idle unless
    one of the tenant's LiveKit accounts has a server URL (reconciliation then keeps the stays
    of participants still present alive) or `idle_timeouts` names the kind; but a stay open in
    a room that finished ends with its room (EndStaysInFinishedRooms), and so does one these
    timeouts have just closed that was stored after the sweep's look, in a finished room. The
    end the reaper chooses is a guess: later evidence (a client's exit, events dated after it)
    may correct it. Tenants are reaped one by one, each in isolation: the result says how many
    sessions were closed (by kind and status), how many are still active, and which tenants
    failed (the charges are told to the metrics by DeductCredits).

    A backlog goes BATCH_SIZE sessions at a time: each batch is closed in one storage step and
    charged in another (DeductCredits.settle_many), and the storage's `batch_pause_seconds`
    separates one batch from the next, so requests waiting to write are served meanwhile."""

    def __init__(
        self,
        tenants: TenantRepository,
        sessions: SessionRepository,
        livekit_accounts: LiveKitAccounts,
        end_stays_in_finished_rooms: EndStaysInFinishedRooms,
        deduct_credits: DeductCredits,
        reports: Reports,
        clock: Clock,
        pause_seconds: float = 0.0,
    ) -> None:
        self._reports = reports
        self._pause_seconds = pause_seconds
        self._tenants = tenants
        self._sessions = sessions
        self._livekit_accounts = livekit_accounts
        self._end_stays_in_finished_rooms = end_stays_in_finished_rooms
        self._deduct_credits = deduct_credits
        self._clock = clock

    async def __call__(self, command: ReapStaleSessionsCommand) -> Reaped:
        run = _Run()

        async def reap(tenant: Tenant) -> None:
            await self._reap(tenant, run)
            run.active += await self._reports.active(tenant.id, None)

        chosen = await chosen_tenants(self._tenants, command.tenant_name)
        failures = await each_tenant(self._tenants, chosen, reap)
        closed_by = dict(run.closed_by)
        failures += run.failures
        return Reaped(sum(closed_by.values()), failures, closed_by, run.active)

    async def _reap(self, tenant: Tenant, run: "_Run") -> None:
        accounts = await self._livekit_accounts.of_tenant(tenant.id)
        seen_open: set[str] = set()
        if accounts:  # LiveKit's webhooks may have stored stays in rooms that finished
            swept = await self._end_stays_in_finished_rooms(tenant)
            run.swept(swept)
            seen_open = swept.seen_open
        reconciled = any(account.url for account in accounts)
        now = self._clock.now()
        staleness = Staleness.of(tenant.settings, now, reconciled)
        window = tenant.settings.late_data_window
        rated = await self._deduct_credits.rated_kinds(tenant.id)
        # Each batch is closed, then charged, in two bounded storage steps (a crash between them
        # leaves its sessions pending: the loop below settles them, in this run or the next),
        # and requests are served between batches.
        while True:
            batch = await self._sessions.time_out_idle(
                tenant.id, staleness, BATCH_SIZE, rated, now, window
            )
            run.closed_by.update((s.kind, s.status.value) for s in batch)
            if accounts:  # stays stored since the sweep, in rooms that had finished
                in_rooms = self._end_stays_in_finished_rooms
                run.swept(await in_rooms.timed_out(tenant, batch, seen_open))
            await self._deduct_credits.settle_many(
                [s for s in batch if s.charge_state is ChargeState.PENDING]
            )
            if len(batch) < BATCH_SIZE:
                break
            await asyncio.sleep(self._pause_seconds)
        # Page after page, so that sessions left pending (corrected faster than settled, a held
        # ledger, an unfinished erasure's) hide none after them: the next run tries them again.
        after = None
        while pending := await self._sessions.pending_charges(tenant.id, BATCH_SIZE, after):
            await self._deduct_credits.settle_many(pending)
            if len(pending) < BATCH_SIZE:
                break
            after = pending[-1].id
            await asyncio.sleep(self._pause_seconds)


@dataclass
class _Run:
    """What a run has done so far, over the tenants reaped."""

    closed_by: Counter[tuple[str, str]] = field(default_factory=Counter)
    active: int = 0
    failures: list[TenantFailure] = field(default_factory=list)  # of single stays

    def swept(self, swept: Swept) -> None:
        self.closed_by.update((e.session.kind, e.session.status.value) for e in swept.ended)
        self.failures += swept.failures
