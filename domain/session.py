"""A session: someone (or an anonymous browser) entering and leaving something.

A session starts active, may be kept alive by heartbeats, and closes exactly once: by its client's
exit, or by the reaper when heartbeats stop. Closing is final; a later exit is a replay of the
first and changes nothing.
"""

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.clock import as_utc, not_in_future
from domain.errors import Conflict, InvalidInput
from domain.text import check_text
from domain.usage import Quantity, Usage, add_usage, validate_usage

KIND_PATTERN = re.compile(r"^[a-z0-9_.-]{1,64}$")
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


class ChargeState(StrEnum):
    NONE = "none"  # still active
    PENDING = "pending"  # closed, its charge not yet recorded
    CHARGED = "charged"
    NOT_CHARGED = "not_charged"


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", as_utc("at", self.at))
        object.__setattr__(self, "usage", validate_usage("usage", self.usage))
        if self.reason is not None:
            check_text("reason", self.reason, MAX_REASON_LENGTH)


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
    summary: JSONObject | None = None
    exit_reason: str | None = None
    charge: Charge | None = None
    charge_state: ChargeState = ChargeState.NONE

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

    def heartbeat(self, at: datetime) -> None:
        if not self.is_active:
            raise Conflict(f"session {self.id} has ended")
        self.last_seen_at = max(self.last_seen_at, as_utc("at", at))

    def close(self, exit: Exit, rated_kinds: frozenset[str] = frozenset()) -> bool:
        """Close the session; True if this call closed it, False if it was already closed.
        It is left to be charged when its kind has a rate, it has a subject to charge, and it
        ended in a way that is charged."""
        if not self.is_active:
            return False
        if exit.at < self.started_at:
            raise InvalidInput("at", "the exit is before the session started")
        self.status = exit.status
        self.ended_at = exit.at
        self.last_seen_at = max(self.last_seen_at, exit.at)
        self.exit_reason = exit.reason
        self.summary = exit.summary
        self.usage = add_usage(self.usage, exit.usage)
        chargeable = (
            self.kind in rated_kinds and not self.is_anonymous and exit.status in CHARGED_STATUSES
        )
        self.charge_state = ChargeState.PENDING if chargeable else ChargeState.NOT_CHARGED
        return True

    def settle(self, charge: Charge) -> None:
        self.charge = charge
        self.charge_state = ChargeState.CHARGED

    def time_out(self) -> Exit:
        """The exit the reaper records: at the last sign of life, so no time is invented."""
        return Exit(at=self.last_seen_at, status=SessionStatus.TIMED_OUT)

    def add_usage(self, more: dict[str, Quantity]) -> None:
        self.usage = add_usage(self.usage, more)

    def copy(self) -> "Session":
        return replace(
            self,
            attributes=dict(self.attributes),
            usage=dict(self.usage),
            event_gaps=list(self.event_gaps),
        )


def _check_id(field_name: str, value: str) -> None:
    check_text(field_name, value, MAX_ID_LENGTH)
