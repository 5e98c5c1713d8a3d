"""A session: someone (or an anonymous browser) entering and leaving something.

A session starts active and is kept alive by signs of life (heartbeats, events, LiveKit webhooks,
reconciliation), each of which moves `last_seen_at` forward (`Session.seen`). It closes once: by
its client's exit, or by the reaper when signs of life stop. A client's end is final: a later exit
is a replay of it and changes nothing. The reaper's end (`timed_out`, at the last sign of life) is
a guess: within the late-data window, evidence dated after it moves it (`seen`) and the client's
own exit replaces it once (`close`). So are the ends the server guesses for a LiveKit stay whose
`left` it has not heard (GUESSED_END_REASONS).
"""

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from domain.clock import as_utc, not_in_future
from domain.errors import Conflict, InvalidInput
from domain.event_gaps import deleted_too
from domain.text import check_json, check_text
from domain.usage import (
    MAX_QUANTITY,
    Quantity,
    Usage,
    add_into,
    add_usage,
    over_the_limit,
    validate_usage,
)

if TYPE_CHECKING:  # events name their session; a session counts its events
    from domain.events import Event

KIND_PATTERN = re.compile(r"[a-z0-9_.-]{1,64}\Z")  # with .match; \Z, since $ takes a final \n
MAX_ID_LENGTH = 200
MAX_REASON_LENGTH = 1000

AttributeValue = str | int | float | bool
JSONObject = dict[str, Any]


class SessionStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    FAILED = "failed"


# What a client may say when it leaves; `timed_out` is the reaper's alone.
CLIENT_EXIT_STATUSES = frozenset(
    {
        SessionStatus.COMPLETED,
        SessionStatus.ABANDONED,
        SessionStatus.CANCELLED,
        SessionStatus.FAILED,
    }
)


# Ways of ending that are charged; a cancelled or failed session costs nothing.
CHARGED_STATUSES = frozenset(
    {SessionStatus.COMPLETED, SessionStatus.ABANDONED, SessionStatus.TIMED_OUT}
)


# Exit reasons of ends the server guesses, as the reaper does, for a session that said nothing:
# reconciliation's (the LiveKit participant was gone: ended when last seen) and a room's end
# (LiveKit's `room_finished` comes after its participants left). The session's own exit
# replaces them once; another guess does not.
RECONCILED = "reconciled"
ROOM_FINISHED = "room_finished"
GUESSED_END_REASONS = frozenset({RECONCILED, ROOM_FINISHED})


class Closing(StrEnum):
    """What an exit did to a session."""

    CLOSED = "closed"  # it ended an active session
    CORRECTED = "corrected"  # it replaced a provisional end (the reaper's or a guess)
    REPLAY = "replay"  # nothing: the session had ended for good, or the window had passed

    @property
    def changed(self) -> bool:
        return self is not Closing.REPLAY


# What the rules below read when they decide on an ended or living session, and what they change:
# a store writes back exactly these (and MongoDB guards its write on what was read).
DECIDED_BY = (
    "status",
    "exit_reason",
    "ended_at",
    "last_seen_at",
    "charge_state",
    "charge_revision",
)
LIFE_CHANGES = ("last_seen_at", "ended_at", "charge_state", "charge_revision")  # sign_of_life
END_CHANGES = (*DECIDED_BY, "summary")  # close (its usage is added apart)
EVENT_CHANGES = (*LIFE_CHANGES, "event_count", "max_sequence_no")  # record_events (and usage)


class ChargeState(StrEnum):
    NONE = "none"  # still active
    PENDING = "pending"  # closed, its charge not yet recorded
    CHARGED = "charged"
    NOT_CHARGED = "not_charged"


def settled_again_on_usage(status: SessionStatus, charge_state: ChargeState) -> bool:
    """Whether usage reaching a session in this state leaves it to be settled again under a new
    revision (Session.usage_added): it has ended, and is charged or pending."""
    return status is not SessionStatus.ACTIVE and charge_state in (
        ChargeState.CHARGED,
        ChargeState.PENDING,
    )


@dataclass(frozen=True)
class Charge:
    credits: int
    balance_after: int
    warning: str | None = None


@dataclass(frozen=True)
class SessionRequest:
    """What a client asks for when it starts a session (its id makes the start idempotent)."""

    kind: str
    resource_id: str
    subject_id: str | None = None
    client_key: str | None = None
    started_at: datetime | None = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    # What the transport knows (user agent, referrer, address): stored where the client did not
    # say otherwise, but not part of the request, so a retry from another address is a replay.
    context: dict[str, AttributeValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Exit:
    """How a session ends: when, with which status, and what it used last."""

    at: datetime
    status: SessionStatus = SessionStatus.COMPLETED
    reason: str | None = None
    summary: JSONObject | None = None
    usage: Usage = field(default_factory=dict)
    # The client said no time: `at` is when it was received, which does not replace a reaper's
    # end (the session was over before the exit arrived).
    at_is_default: bool = False

    @property
    def by_reaper(self) -> bool:
        return self.status is SessionStatus.TIMED_OUT

    @property
    def is_guess(self) -> bool:
        """Whether it is the server's guess (the reaper's, or of GUESSED_END_REASONS)."""
        return self.by_reaper or self.reason in GUESSED_END_REASONS

    @property
    def when_last_seen(self) -> bool:
        """Whether it ends the session when it was last seen (the reaper's, reconciliation's):
        as the session is when it closes, so a sign of life that came after the guesser read
        it is not left after its end."""
        return self.by_reaper or self.reason == RECONCILED

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", as_utc("at", self.at))
        object.__setattr__(self, "usage", validate_usage("usage", self.usage))
        if self.reason is not None:
            check_text("reason", self.reason, MAX_REASON_LENGTH)
        if self.summary is not None:
            check_json("summary", self.summary)


@dataclass
class Session:
    tenant_id: str
    id: str
    kind: str
    resource_id: str
    subject_id: str | None
    client_key: str | None
    started_at: datetime
    last_seen_at: datetime
    status: SessionStatus = SessionStatus.ACTIVE
    ended_at: datetime | None = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    usage: Usage = field(default_factory=dict)
    event_count: int = 0
    max_sequence_no: int = 0
    event_gaps: list[tuple[int, int]] = field(default_factory=list)
    # The numbers of its events deleted (by retention, or with their resource), as ranges: they
    # arrived, so they are no gap.
    deleted_events: list[tuple[int, int]] = field(default_factory=list)
    summary: JSONObject | None = None
    exit_reason: str | None = None
    charge: Charge | None = None
    charge_state: ChargeState = ChargeState.NONE
    # Moves on with every correction of an ended session's price basis; a settlement claims the
    # revision it priced (domain.charging).
    charge_revision: int = 0

    @classmethod
    def start(cls, tenant_id: str, id: str, request: SessionRequest, now: datetime) -> "Session":
        if not KIND_PATTERN.match(request.kind):
            raise InvalidInput("kind", "1-64 characters of a-z 0-9 _ . -")
        _check_id("resource_id", request.resource_id)
        if request.subject_id is not None:
            _check_id("subject_id", request.subject_id)
        if request.client_key is not None:
            _check_id("client_key", request.client_key)
        if request.subject_id is None and request.client_key is None:
            raise InvalidInput("client_key", "is required when subject_id is absent")
        started_at = (
            now
            if request.started_at is None
            else not_in_future("started_at", request.started_at, now)
        )
        return cls(
            tenant_id=tenant_id,
            id=id,
            kind=request.kind,
            resource_id=request.resource_id,
            subject_id=request.subject_id,
            client_key=request.client_key,
            started_at=started_at,
            last_seen_at=started_at,
            attributes={**request.context, **request.attributes},
        )

    @property
    def is_active(self) -> bool:
        return self.status is SessionStatus.ACTIVE

    @property
    def is_anonymous(self) -> bool:
        return self.subject_id is None

    @property
    def duration_seconds(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def matches(self, request: SessionRequest) -> bool:
        """Whether `request` repeats the start that created this session (a replay)."""
        same_start = request.started_at is None or as_utc("started_at", request.started_at) == (
            self.started_at
        )
        same_attributes = all(
            self.attributes.get(name) == value for name, value in request.attributes.items()
        )
        return (
            (request.kind, request.resource_id, request.subject_id, request.client_key)
            == (self.kind, self.resource_id, self.subject_id, self.client_key)
            and same_start
            and same_attributes
        )

    @property
    def is_provisional(self) -> bool:
        """Whether its end is a guess (the reaper's, or of GUESSED_END_REASONS), which later
        evidence may correct."""
        return self.status is SessionStatus.TIMED_OUT or (
            self.status is not SessionStatus.ACTIVE and self.exit_reason in GUESSED_END_REASONS
        )

    def correctable(self, now: datetime, window: timedelta) -> bool:
        """Whether evidence arriving now may still move its end."""
        return self.is_provisional and not self._past_window(now, window)

    def _past_window(self, now: datetime, window: timedelta) -> bool:
        return self.ended_at is not None and now - self.ended_at > window

    def heartbeat(self, at: datetime) -> bool:
        """Take a client's heartbeat dated `at`: an active session's last_seen_at moves forward
        to it, never back; an ended session takes none (Conflict). True when it moved."""
        if not self.is_active:
            raise Conflict(f"session {self.id} has ended")
        at = as_utc("at", at)
        moved = at > self.last_seen_at
        self.last_seen_at = max(self.last_seen_at, at)
        return moved

    def refusal(self, at: datetime, now: datetime, window: timedelta) -> str | None:
        """Why an event dated `at` is not taken, or None when it is: an active session takes
        every event; an ended one takes events dated up to its end (a kiosk flushing its buffer
        after the exit), and a provisional end events after it too, while the window lasts."""
        if self.is_active:
            return None
        if self._past_window(now, window):
            return "late"
        assert self.ended_at is not None
        if at <= self.ended_at or self.is_provisional:
            return None
        return "session_ended"

    def seen(self, at: datetime, now: datetime) -> bool:
        """Take a sign of life dated `at` (never past now): an active session's last_seen_at
        moves forward to it, never back; a provisional end earlier than `at` moves to it (but
        not its room's end).
        True when anything changed. Callers check `refusal` first."""
        at = min(at, now)
        if self.is_active:
            moved = at > self.last_seen_at
            self.last_seen_at = max(self.last_seen_at, at)
            return moved
        # Nobody is present in a finished room: evidence after its end moves no stay's end.
        movable = self.is_provisional and self.exit_reason != ROOM_FINISHED
        if movable and self.ended_at is not None and at > self.ended_at:
            self.ended_at = at
            self.last_seen_at = max(self.last_seen_at, at)
            return True
        return False

    def close(
        self,
        exit: Exit,
        rated_kinds: frozenset[str] = frozenset(),
        now: datetime | None = None,
        window: timedelta | None = None,
    ) -> Closing:
        """End the session with `exit`. An active session closes; a provisional end is replaced
        by a client's exit while the window lasts (`now` and `window` given), and the reaper's
        by a guess too; anything else is a replay. A closed session is left to be charged when
        its kind has a rate, it has a subject to charge, and it ended in a way that is
        charged."""
        if self.is_active:
            self._check_usage(exit)
            self._end_at(self._end_of(exit))
            self._take(exit)
            chargeable = self._chargeable(rated_kinds)
            self.charge_state = ChargeState.PENDING if chargeable else ChargeState.NOT_CHARGED
            return Closing.CLOSED
        correcting = now is not None and window is not None and self.correctable(now, window)
        if exit.by_reaper or not correcting:
            return Closing.REPLAY
        if exit.is_guess and self.status is not SessionStatus.TIMED_OUT:
            return Closing.REPLAY  # a guess does not replace another guess
        self._check_usage(exit)
        if not exit.at_is_default:
            self._end_at(self._end_of(exit))
        self._take(exit)
        self._reprice()
        if self.charge is None and not self._chargeable(rated_kinds):
            self.charge_state = ChargeState.NOT_CHARGED  # never charged, and now never will be
        return Closing.CORRECTED

    def sign_of_life(self, at: datetime, now: datetime, window: timedelta) -> bool:
        """Take a sign of life that comes with no data (a LiveKit webhook, reconciliation):
        what `seen` does, where `refusal` allows it. True when anything changed."""
        if self.refusal(at, now, window) is not None:
            return False
        moved = self.seen(at, now)
        if moved and not self.is_active:
            self._reprice()
        return moved

    def usage_added(self) -> None:
        """Usage reached it other than by an event or an exit (a LiveKit track's seconds): an
        ended session's price may have changed, so it is left to be settled again."""
        if settled_again_on_usage(self.status, self.charge_state):
            self._reprice()

    def record_events(self, events: Sequence["Event"], now: datetime) -> Usage:
        """Count events just stored for this session (each once; `refusal` let them in): their
        meters add to its usage, the latest is a sign of life, and an ended session whose price
        they may change (meters, a moved end) is left to be settled again. Returns the usage
        they added."""
        if not events:
            return {}
        moved = self.seen(max(e.at for e in events), now)
        more: Usage = {}
        for event in events:
            add_into(more, event.meters)
        self.usage = add_usage(self.usage, more)
        self.event_count += len(events)
        self.max_sequence_no = max(self.max_sequence_no, *(e.sequence_no for e in events))
        if not self.is_active and (moved or more):
            self._reprice()
        return more

    def _reprice(self) -> None:
        """Its price may have changed: a charged (or pending) session is pending again, under a
        new revision, so the settlement of the old one cannot be claimed twice."""
        if self.charge_state in (ChargeState.CHARGED, ChargeState.PENDING):
            self.charge_revision += 1
            self.charge_state = ChargeState.PENDING

    def _end_of(self, exit: Exit) -> datetime:
        return max(exit.at, self.last_seen_at) if exit.when_last_seen else exit.at

    def _end_at(self, at: datetime) -> None:
        if at < self.started_at:
            raise InvalidInput("at", "the exit is before the session started")
        self.ended_at = at
        self.last_seen_at = max(self.last_seen_at, at)

    def _check_usage(self, exit: Exit) -> None:
        """The meters the exit adds stay below the limit (the reaper's exit adds none)."""
        if (meter := over_the_limit(self.usage, exit.usage)) is not None:
            raise InvalidInput(f"usage.{meter}", f"the session's total would reach {MAX_QUANTITY}")

    def _take(self, exit: Exit) -> None:
        self.status = exit.status
        self.exit_reason = exit.reason
        self.summary = exit.summary
        self.usage = add_usage(self.usage, exit.usage)

    def _chargeable(self, rated_kinds: frozenset[str]) -> bool:
        return (
            self.kind in rated_kinds and not self.is_anonymous and self.status in CHARGED_STATUSES
        )

    def awaits_settlement(self, revision: int) -> bool:
        """Whether a settlement priced at `revision` may claim it now."""
        return (
            self.charge_state is ChargeState.PENDING
            and self.charge_revision == revision
            and self.subject_id is not None
        )

    def settle(self, charge: Charge) -> None:
        self.charge = charge
        self.charge_state = ChargeState.CHARGED

    def time_out(self) -> Exit:
        """The exit the reaper records: at the last sign of life, so no time is invented."""
        return Exit(at=self.last_seen_at, status=SessionStatus.TIMED_OUT)

    def add_usage(self, more: dict[str, Quantity]) -> None:
        self.usage = add_usage(self.usage, more)

    def events_deleted(self, numbers: Iterable[int]) -> None:
        """These of its events were deleted: they arrived, so they are no gap."""
        self.deleted_events = deleted_too(self.deleted_events, numbers)

    def copy(self) -> "Session":
        """A copy sharing nothing that either may change: what one holds on to while the other
        is decided on (copy.deepcopy, at six times the cost, on the lifecycle's hot path)."""
        return replace(
            self,
            attributes=dict(self.attributes),
            usage=dict(self.usage),
            event_gaps=list(self.event_gaps),
            deleted_events=list(self.deleted_events),
            summary=None if self.summary is None else copy.deepcopy(self.summary),
        )


def _check_id(field_name: str, value: str) -> None:
    check_text(field_name, value, MAX_ID_LENGTH)


# Whether the caller may write into a session as stored: raises (Forbidden) if not.
WriteCheck = Callable[[Session], None]
