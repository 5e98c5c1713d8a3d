"""Record that someone left."""

from dataclasses import dataclass, field
from datetime import datetime

from application.credits.deduct_credits import DeductCredits
from application.ports import Clock
from application.rollups.rollup_rewinds import RollupRewinds
from application.sessions.billed_kinds import BilledKinds
from application.sessions.ports import EndsWithSession, SessionRepository
from application.sessions.session_ids import existing_session_id
from domain.clock import happened, not_in_future
from domain.errors import InvalidInput
from domain.session import (
    CLIENT_EXIT_STATUSES,
    GUESSED_END_REASONS,
    Closing,
    Exit,
    JSONObject,
    Session,
    SessionStatus,
)
from domain.tenants import Access, TenantSettings
from domain.usage import Usage


@dataclass(frozen=True)
class RecordExitCommand:
    tenant_id: str
    session_id: str
    at: datetime | None = None
    status: str = SessionStatus.COMPLETED
    reason: str | None = None
    summary: JSONObject | None = None
    usage: Usage = field(default_factory=dict)
    settings: TenantSettings = field(default_factory=TenantSettings)
    # Said by the server that hosted the session (LiveKit, or reconciliation asking it), not by a
    # client: its time is taken however long ago, since nothing else will ever end the session.
    from_server: bool = False
    # The caller's key: an ingest key may not write billed or limited kinds, nor a scoped one
    # other resources (BilledKinds).
    access: Access = field(default_factory=Access)


@dataclass(frozen=True)
class RecordedExit:
    session: Session
    closing: Closing

    @property
    def closed(self) -> bool:
        """Whether this exit ended the session (False: a correction or a replay)."""
        return self.closing is Closing.CLOSED


class RecordExit:
    """Record that someone left: with a `status` of completed (the default), abandoned,
    cancelled or failed (`timed_out` is the reaper's alone), at `at` (by default when the exit
    arrives; at most 5 minutes ahead of the service's clock, and `late` if older than the
    late-data window), optionally with a reason, a summary and usage to add.

    What an exit does is decided by `domain.session.Session.close` (→ `Closing`): an active
    session closes; a session the reaper closed (its end a guess from the last sign of life)
    takes the client's exit instead, once, within the late-data window — its time if the exit
    says one, else the reaper's; every other exit is a replay, answered with the session as
    stored. Only an exit that closed or corrected the session adds its usage. A replayed exit
    changes nothing and charges nothing; it only finishes a charge a crash left pending. An
    ingest key may not exit a session of a billed or limited kind, nor a scoped key a session of
    another resource (`forbidden`; see BilledKinds).

    Charging follows (DeductCredits, `domain.charging.price`; a store may settle the first
    charge in the close's own write, `ChargeOnClose`): a closed session is charged
    when its kind has a rate, it has a subject, and it ended completed, abandoned or timed out
    (cancelled and failed cost nothing); a charged session whose price a correction changed
    gets one adjustment entry. Then what ends with the session takes its end (EndsWithSession:
    a LiveKit stay's tracks still open, or ended with it, whose seconds settle it again)."""

    def __init__(
        self,
        sessions: SessionRepository,
        deduct_credits: DeductCredits,
        rewinds: RollupRewinds,
        billed_kinds: BilledKinds,
        ends_with_session: EndsWithSession,
        clock: Clock,
    ) -> None:
        self._billed_kinds = billed_kinds
        self._ends_with_session = ends_with_session
        self._rewinds = rewinds
        self._sessions = sessions
        self._deduct_credits = deduct_credits
        self._clock = clock

    async def __call__(self, command: RecordExitCommand) -> RecordedExit:
        if command.status not in CLIENT_EXIT_STATUSES:
            allowed = ", ".join(sorted(CLIENT_EXIT_STATUSES))
            raise InvalidInput("status", f"must be one of {allowed}")
        if command.reason in GUESSED_END_REASONS and not command.from_server:
            # They mark the end as the server's guess, which a later exit would replace.
            raise InvalidInput("reason", f"`{command.reason}` is the server's own reason")
        now = self._clock.now()
        window = command.settings.late_data_window
        if command.at is None:
            at = now
        elif command.from_server:
            at = not_in_future("at", command.at, now)
        else:
            at = happened("at", command.at, now, window)
        exit = Exit(
            at=at,
            status=SessionStatus(command.status),
            reason=command.reason,
            summary=command.summary,
            usage=command.usage,
            at_is_default=command.at is None,
        )
        session_id = existing_session_id(command.session_id)
        check = await self._billed_kinds.write_check(command.tenant_id, command.access)
        charge = await self._deduct_credits.charge_on_close(command.tenant_id)
        session, closing = await self._sessions.close(
            command.tenant_id,
            session_id,
            exit,
            charge.rated_kinds,
            now,
            window,
            check,
            charge=charge,
        )
        self._deduct_credits.charged_in_close(session, closing)
        if closing is Closing.CORRECTED:  # hours since it started may have been rolled up
            await self._rewinds.changed_since(command.tenant_id, session.started_at)
        elif session.ended_at is not None:
            # An end before the last sign of life takes back hours rolled up as active (runs
            # recompute from the last signs of life of the sessions still active: RollUpUsage).
            # A replay too: the close it repeats may have failed before its rewind.
            await self._rewinds.changed_since(command.tenant_id, session.ended_at)
        # A replay settles too: it finishes a charge that a crash left pending.
        settled = await self._deduct_credits(session)
        followed = await self._ends_with_session.follow(settled)
        return RecordedExit(followed or settled, closing)
