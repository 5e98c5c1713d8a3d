"""Events a session's client reports, numbered so that retries and losses are visible.

Each event carries a sequence number unique within its session: a number seen twice is a
retry (stored once), a number never seen is a gap.
"""

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from domain.clock import as_utc
from domain.erasure import is_pseudonym
from domain.errors import Forbidden, InvalidInput
from domain.session import JSONObject, Session
from domain.tenants import Access
from domain.text import check_json, check_text
from domain.usage import MAX_QUANTITY, Usage, add_into, over_the_limit, validate_usage

MAX_NAME_LENGTH = 64
MAX_SEQUENCE_NO = 2**63 - 1  # a signed 64-bit integer in every store
DISTRIBUTION_FIELDS = ("label", "type", "category")


# Slots: batches build thousands a second, and slots make that a fifth cheaper.
@dataclass(frozen=True, slots=True)
class Event:
    session_id: str
    sequence_no: int
    type: str
    at: datetime
    category: str | None = None
    label: str | None = None
    data: JSONObject | None = None
    meters: Usage = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.sequence_no <= MAX_SEQUENCE_NO:
            raise InvalidInput("sequence_no", f"must be 1-{MAX_SEQUENCE_NO}")
        check_text("type", self.type, MAX_NAME_LENGTH)
        if self.category is not None:
            check_text("category", self.category, MAX_NAME_LENGTH)
        if self.label is not None:
            check_text("label", self.label, MAX_NAME_LENGTH)
        object.__setattr__(self, "at", as_utc("at", self.at))
        if self.meters:
            object.__setattr__(self, "meters", validate_usage("meters", self.meters))
        if self.data is not None:
            check_json("data", self.data)


# Whether the caller may write an event into a session: None, or the reason it may not.
Admission = Callable[[Session, "Event"], str | None]


def admission_of(access: Access, billed: frozenset[str]) -> Admission:
    """What a key may write into existing sessions (`Access.check_scope`, and meters only of
    kinds that are not `billed`: `Access.check_writes`), judged on the sessions as stored."""

    def admits(session: Session, event: Event) -> str | None:
        try:
            access.check_scope(session.resource_id)
            if event.meters:
                access.check_writes(session.kind, billed)
        except Forbidden as forbidden:
            return f"forbidden: {forbidden.detail}"
        return None

    return admits


@dataclass(frozen=True)
class EventRejection:
    """Why one event of a batch was not stored (its position in the batch and a reason code)."""

    index: int
    error: str


@dataclass(frozen=True)
class BatchOutcome:
    inserted: int = 0
    duplicates: int = 0
    rejections: list[EventRejection] = field(default_factory=list)
    # Ended sessions the batch left pending a settlement (late meters, a moved end).
    repriced: frozenset[str] = frozenset()
    # The earliest start of the ended sessions the batch offered events to (ended_since): the
    # days their funnels and usage were rolled up in may change.
    ended_since: datetime | None = None

    @property
    def failed(self) -> int:
        return len(self.rejections)


@dataclass
class SortedBatch:
    """A batch sorted by what its sessions take, before anything is stored."""

    rejections: list[EventRejection] = field(default_factory=list)  # unknown sessions
    new: list[tuple[int, Event]] = field(default_factory=list)  # first of each number, to insert
    # Not taken (with the reason): a duplicate if stored already, else refused for that reason.
    refused: list[tuple[int, Event, str]] = field(default_factory=list)
    # Sessions of which an event was refused as its meter's total would reach the limit.
    limited: set[str] = field(default_factory=set)

    def to_look_up(self) -> list[Event]:
        """The new events of the sessions where the limit refused one. Those already stored (a
        batch sent again) are duplicates that add nothing, and were counted towards the limit
        here: sort the batch again with them `stored`."""
        return [e for _, e in self.new if e.session_id in self.limited]

    def rejected(self, stored: set[tuple[str, int]]) -> list[EventRejection]:
        """Every rejection, given which of the refused events were `stored` before (those are
        duplicates, not errors), in batch order."""
        refused = [
            EventRejection(i, reason)
            for i, e, reason in self.refused
            if (e.session_id, e.sequence_no) not in stored
        ]
        return sorted(self.rejections + refused, key=lambda r: r.index)


def sort_batch(
    batch: Iterable[tuple[int, Event]],
    sessions: Mapping[str, Session],
    now: datetime,
    window: timedelta,
    admits: Admission | None = None,
    stored: Collection[tuple[str, int]] = frozenset(),
) -> SortedBatch:
    """Sort (position, event) pairs by whether their session takes them (Session.refusal;
    absent: no such session; a meter's total reaching MAX_QUANTITY) and the caller may write
    into it (`admits`; what it refuses is refused even if stored before). Of a number repeated
    within the batch only the first is new; a new event of an erased session comes without its
    label and data (domain.erasure). The sessions must carry their usage. Events known to be
    `stored` (session id, sequence number) are duplicates, neither new nor refused, and count
    towards no limit (SortedBatch.to_look_up)."""
    sorted_batch = SortedBatch()
    first_of: dict[tuple[str, int], tuple[int, Event]] = {}
    totals = {session_id: dict(session.usage) for session_id, session in sessions.items()}
    # Their person was forgotten while their client still sent: what it says is not kept.
    forgotten = {
        session_id
        for session_id, session in sessions.items()
        if is_pseudonym(session.subject_id) or is_pseudonym(session.client_key)
    }
    for index, event in batch:
        session = sessions.get(event.session_id)
        if session is None:
            sorted_batch.rejections.append(EventRejection(index, "session_not_found"))
            continue
        if admits is not None and (forbidden := admits(session, event)) is not None:
            sorted_batch.rejections.append(EventRejection(index, forbidden))
            continue
        if (event.session_id, event.sequence_no) in stored:
            continue
        reason = session.refusal(event.at, now, window)
        total = totals[session.id]
        if reason is None and (meter := over_the_limit(total, event.meters)) is not None:
            reason = (
                f"validation_error: meters.{meter}: the session's total would reach {MAX_QUANTITY}"
            )
            sorted_batch.limited.add(session.id)
        if reason is not None:
            sorted_batch.refused.append((index, event, reason))
        elif (event.session_id, event.sequence_no) not in first_of:
            if session.id in forgotten:
                event = replace(event, label=None, data=None)
            first_of[(event.session_id, event.sequence_no)] = (index, event)
            add_into(total, event.meters)
    sorted_batch.new = list(first_of.values())
    return sorted_batch


def count_into_sessions(
    sessions: Mapping[str, Session], stored: Iterable[Event], now: datetime
) -> tuple[dict[str, Usage], frozenset[str]]:
    """Count events just stored into their sessions, each session's together
    (Session.record_events): what each session's meters gained, and the ended sessions whose
    price may have changed (left pending a settlement)."""
    by_session: dict[str, list[Event]] = {}
    for event in stored:
        by_session.setdefault(event.session_id, []).append(event)
    usage: dict[str, Usage] = {}
    repriced = set()
    for session_id, new in by_session.items():
        session = sessions[session_id]
        revision = session.charge_revision
        usage[session_id] = session.record_events(new, now)
        if session.charge_revision != revision:
            repriced.add(session_id)
    return usage, frozenset(repriced)


def ended_since(sessions: Mapping[str, Session], events: Iterable[Event]) -> datetime | None:
    """The earliest start of the ended sessions (as read before the batch) that `events` go
    to. An active session's hours are rolled up again until it ends; an ended one's may be
    final already."""
    starts = [
        session.started_at
        for session_id in {e.session_id for e in events}
        if (session := sessions.get(session_id)) is not None and not session.is_active
    ]
    return min(starts, default=None)


@dataclass(frozen=True)
class Distribution:
    total: int
    counts: dict[str, int]

    @property
    def percentages(self) -> dict[str, float]:
        if not self.total:
            return {}
        return {value: round(100 * n / self.total, 2) for value, n in self.counts.items()}
