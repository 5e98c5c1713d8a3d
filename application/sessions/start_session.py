"""Start a session."""

import logging
from dataclasses import dataclass, field

from application.credits.ports import CreditLedger, RateRepository
from application.ports import Clock
from application.rollups.rollup_rewinds import RollupRewinds
from application.sessions.billed_kinds import BilledKinds
from application.sessions.ports import SessionRepository
from application.sessions.session_ids import canonical_session_id, new_session_id
from application.storage import StorageError
from application.trials.plan_of_subject import PlanOfSubject
from application.trials.ports import RefusedStarts
from domain.calendar import Calendar
from domain.clock import happened
from domain.errors import Conflict, Contended, InsufficientCredits
from domain.plans import (
    Plan,
    SessionLimit,
    SessionLimitReached,
    Subscription,
    TrialExhausted,
    trial_status,
)
from domain.refusals import Refusal, RefusedStart
from domain.session import Session, SessionRequest
from domain.tenants import Access, Overdraft, TenantSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartSessionCommand:
    tenant_id: str
    request: SessionRequest
    session_id: str | None = None
    settings: TenantSettings = field(default_factory=TenantSettings)
    # The caller's key: an ingest key may not write billed or limited kinds, nor a scoped one
    # other resources (BilledKinds).
    access: Access = field(default_factory=Access)


@dataclass(frozen=True)
class StartedSession:
    session: Session
    created: bool  # False: a replay of an earlier start


class StartSession:
    """Start a session of a `kind` on a `resource_id`, for a `subject_id` or, for an anonymous
    visitor, a `client_key` (one of the two is required). A client may supply the session's id
    (a UUID): the same id again with the same content is a replay that answers with the session
    first started (200) and checks nothing again; with other content it is a conflict. A
    `started_at` (by default now) may lie in the past within the late-data window (older is
    `late`), and at most 5 minutes ahead of the service's clock (`domain.clock.MAX_FUTURE_SKEW`,
    for clients' clock skew).

    Under the hard overdraft policy, a session of a rated kind with a subject starts only if
    the subject's balance reaches the tenant's `min_start_credits` (else
    `insufficient_credits`, with the balance and the minimum).

    A subject's plan (the one it is on when the session starts) may limit its sessions per
    resource: the kinds the plan names count together against one limit, and kinds the plan
    does not name are never limited, nor are anonymous sessions. A session counts when it
    starts, whatever its end. The start that would pass the limit is refused and not stored
    (`trial_exhausted`, with the trial status and the tenant's upgrade URL): the store counts
    and inserts in one step, deciding with `domain.plans.SessionLimit.admit`, so concurrent
    starts never pass it together.

    An ingest key (a browser's, a kiosk's) may not start a session of a kind that has a rate or
    that a plan's limits name (`forbidden`): the product's back end starts those with an app
    key. A key scoped to resources starts sessions of those resources only (`forbidden`).

    Each start refused `trial_exhausted` or `insufficient_credits` is counted for the trial
    report (per subject, kind, reason and day) before the refusal is answered."""

    def __init__(
        self,
        sessions: SessionRepository,
        rates: RateRepository,
        ledger: CreditLedger,
        plan_of_subject: PlanOfSubject,
        billed_kinds: BilledKinds,
        refused_starts: RefusedStarts,
        rewinds: RollupRewinds,
        clock: Clock,
    ) -> None:
        self._billed_kinds = billed_kinds
        self._rewinds = rewinds
        self._refused_starts = refused_starts
        self._sessions = sessions
        self._rates = rates
        self._ledger = ledger
        self._plan_of_subject = plan_of_subject
        self._clock = clock

    async def __call__(self, command: StartSessionCommand) -> StartedSession:
        command.access.check_scope(command.request.resource_id)
        await self._billed_kinds.check(command.tenant_id, command.access, command.request.kind)
        if command.session_id is None:
            session_id = new_session_id()
        else:
            session_id = canonical_session_id(command.session_id)
            replay = await self._replay(command, session_id)
            if replay is not None:
                return replay
        now = self._clock.now()
        if (started_at := command.request.started_at) is not None:
            happened("started_at", started_at, now, command.settings.late_data_window)
        session = Session.start(command.tenant_id, session_id, command.request, now)
        await self._admit(command, session)
        plan, subscription = await self._plan_of(session)
        try:
            added = await self._sessions.add(session, _limit(session, plan))
        except SessionLimitReached as reached:
            await self._refused(session, Refusal.TRIAL_EXHAUSTED, command.settings.calendar)
            status = trial_status(session.resource_id, plan, subscription is not None, reached.used)
            raise TrialExhausted(status, command.settings.upgrade_url) from None
        if added:
            await self._rewind(command, session)
            return StartedSession(session, created=True)
        # Another caller stored this id between our look-up and our insert.
        replay = await self._replay(command, session_id)
        if replay is None:
            raise Contended(f"session {session_id} could not be stored; retry the request")
        return replay

    async def _rewind(self, command: StartSessionCommand, session: Session) -> None:
        """A start dated back (a kiosk back online) changes the hours it started in, which a
        rollup may have counted for good. If that fails, a start with the client's id fails
        (its resend, a replay, rewinds); one without is answered as stored all the same, since
        its resend would start a second session."""
        try:
            await self._rewinds.changed_since(command.tenant_id, session.started_at)
        except StorageError as error:
            if command.session_id is not None:
                raise
            log.warning(
                "session %s is stored, but the rollups could not be told of its start (%s): "
                "run `sessionmeter rollup --since %s`",
                session.id,
                error,
                session.started_at.isoformat(),
            )

    async def _admit(self, command: StartSessionCommand, session: Session) -> None:
        """Under the hard overdraft policy, a rated session needs the minimum balance to start."""
        settings = command.settings
        if settings.overdraft is not Overdraft.HARD or session.subject_id is None:
            return
        if session.kind not in {r.kind for r in await self._rates.all(command.tenant_id)}:
            return
        balance = (await self._ledger.balance(command.tenant_id, session.subject_id)).balance
        if balance < settings.min_start_credits:
            await self._refused(session, Refusal.INSUFFICIENT_CREDITS, settings.calendar)
            raise InsufficientCredits(balance, settings.min_start_credits)

    async def _refused(self, session: Session, reason: Refusal, calendar: Calendar) -> None:
        assert session.subject_id is not None  # only a subject's starts are refused for payment
        now = self._clock.now()
        refused = RefusedStart.at(now, session.subject_id, session.kind, reason, calendar)
        await self._refused_starts.record(session.tenant_id, refused)

    async def _plan_of(self, session: Session) -> tuple[Plan | None, Subscription | None]:
        if session.subject_id is None:  # anonymous sessions are never limited
            return None, None
        return await self._plan_of_subject(
            session.tenant_id, session.subject_id, session.started_at
        )

    async def _replay(self, command: StartSessionCommand, session_id: str) -> StartedSession | None:
        stored = await self._sessions.get(command.tenant_id, session_id)
        if stored is None:
            return None
        if not stored.matches(command.request):
            raise Conflict(f"session {session_id} already exists with different content")
        # A replay rewinds too: the start it repeats may have failed after its insert (a 503).
        await self._rewinds.changed_since(command.tenant_id, stored.started_at)
        return StartedSession(stored, created=False)


def _limit(session: Session, plan: Plan | None) -> SessionLimit | None:
    """The limit the subject's plan puts on sessions of this kind on this resource: none for a
    kind the plan does not name; else one limit shared by all the kinds it names."""
    allowed = None if plan is None else plan.session_limit(session.kind)
    if plan is None or allowed is None or session.subject_id is None:
        return None
    return SessionLimit(session.subject_id, session.resource_id, plan.limits.session_kinds, allowed)
