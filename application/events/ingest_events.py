"""Ingest a batch of events."""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from application.credits.deduct_credits import DeductCredits
from application.events.ports import EventLog
from application.ports import Clock
from application.rollups.rollup_rewinds import RollupRewinds
from application.sessions.billed_kinds import BilledKinds
from application.sessions.ports import SessionRepository
from domain.clock import happened_by
from domain.errors import InvalidInput, Late, PayloadTooLarge
from domain.events import Admission, BatchOutcome, Event, EventRejection, admission_of
from domain.tenants import Access, Role, Tenant


@dataclass(frozen=True)
class IngestEventsCommand:
    tenant: Tenant
    # In the client's order; an event that could not be read is already a rejection.
    events: Sequence[Event | EventRejection]
    # The caller's key: an ingest key may not add meters to billed or limited kinds, nor a
    # scoped one write sessions of other resources.
    access: Access = field(default_factory=Access)


class IngestEvents:
    """Ingest a batch of events: store each valid one once, and say what became of every one
    (by its position in the batch). A batch holds at most the tenant's `max_batch_events` (100
    unless set); a larger one is refused whole (`payload_too_large`). Otherwise each event is
    judged on its own, and one refused does not hold back the others:

    - a duplicate, adding nothing: an event already stored (the same session and sequence
      number), before or earlier in the batch, even if its session has ended since;
    - `validation_error: <field>: <why>`: a field is missing or malformed, the event is dated
      more than 5 minutes ahead of the service's clock, or a meter's total for its session
      would reach 10^9;
    - `session_not_found`: the tenant has no session of that id;
    - `late`: the event is dated more than the late-data window ago, or its session ended
      longer ago than that;
    - `session_ended`: the event is dated after its session's end, and a client ended it;
    - `forbidden: …`: an ingest key sent meters for a session of a kind that has a rate or that
      a plan's limits name (its meters come from the product's back end; see BilledKinds), or
      a key scoped to resources sent an event of a session of another resource.

    Where it is decided: `domain.clock.happened` (the date), then `domain.events.sort_batch`
    and `domain.session.Session.refusal`: an active session takes every event; an ended one
    takes events dated up to its end while the late-data window lasts (a kiosk flushing its
    buffer after the exit); one the reaper ended takes later ones too, and its end moves to
    them (`Session.record_events`). Events are signs of life: the latest of a batch moves its
    session's last_seen_at (never past now). Meters add to the session's usage once; late
    meters or a moved end of a charged session are settled as one adjustment (DeductCredits),
    and the rollups of hours late data changed are recomputed by the next run."""

    def __init__(
        self,
        events: EventLog,
        sessions: SessionRepository,
        deduct_credits: DeductCredits,
        rewinds: RollupRewinds,
        billed_kinds: BilledKinds,
        clock: Clock,
    ) -> None:
        self._billed_kinds = billed_kinds
        self._rewinds = rewinds
        self._events = events
        self._sessions = sessions
        self._deduct_credits = deduct_credits
        self._clock = clock

    async def __call__(self, command: IngestEventsCommand) -> BatchOutcome:
        settings = command.tenant.settings
        limit = settings.max_batch_events
        if len(command.events) > limit:
            raise PayloadTooLarge(f"a batch holds at most {limit} events")
        now = self._clock.now()
        window = settings.late_data_window
        judged = happened_by(now, window)
        valid: list[tuple[int, Event]] = []
        refused: list[EventRejection] = []
        for index, event in enumerate(command.events):
            if isinstance(event, EventRejection):
                refused.append(event)
                continue
            try:
                judged("at", event.at)
            except Late:
                refused.append(EventRejection(index, "late"))
            except InvalidInput as error:
                refused.append(EventRejection(index, f"validation_error: at: {error.message}"))
            else:
                valid.append((index, event))
        tenant_id = command.tenant.id
        stored = (
            await self._events.append(
                tenant_id, valid, now, window, await self._admission(tenant_id, command, valid)
            )
            if valid
            else BatchOutcome()
        )
        # Duplicates rewind too: the batch they repeat may have failed after its insert (a 503).
        offered = stored.inserted or stored.duplicates
        changed_since = [e.at for _, e in valid] if offered else []
        if offered and stored.ended_since is not None:  # late events: start days change
            changed_since.append(stored.ended_since)
        for session_id in sorted(stored.repriced):
            session = await self._sessions.get(tenant_id, session_id)
            if session is not None:
                await self._deduct_credits(session)
        if changed_since:
            await self._rewinds.changed_since(tenant_id, min(changed_since))
        rejections = sorted([*refused, *stored.rejections], key=lambda r: r.index)
        return replace(stored, rejections=rejections)

    async def _admission(
        self, tenant_id: str, command: IngestEventsCommand, events: list[tuple[int, Event]]
    ) -> Admission | None:
        """An ingest key may not add meters to billed or limited kinds, nor a scoped one write
        into sessions of other resources; the store judges each event on its locked session."""
        access = command.access
        if access.role is not Role.INGEST:
            return None
        metered = any(e.meters for _, e in events)
        billed = await self._billed_kinds.of(tenant_id) if metered else frozenset()
        return admission_of(access, billed)
