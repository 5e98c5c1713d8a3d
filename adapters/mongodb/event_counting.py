"""Counting stored events into their sessions exactly once, without a transaction.

An append inserts its new events marked with a batch token (an ObjectId, so it carries the time
it was made), then counts them into each session (Session.record_events: usage, counters,
last_seen_at, a provisional end, a new charge revision) in one update guarded on the session as
it was read and on `counting != token`, which also records the token in the session's `counting`
list: so the step happens at most once per session, whoever runs it, and a session that changed
in between is read and decided again. Events the session no longer takes when they are counted
(it ended, the window passed, the meter's cap) are refused: recorded in that same update
(`refusals.<token>`, number and reason, kept for good), then deleted; the guard also requires no
refusals recorded for the token, so two finishers of one batch cannot both decide, and the one
that finds the token decided takes the recorded refusals. Then the marks are removed, then the
token. A crash between the steps leaves marked events behind; `finish_stale_batches` completes
them later (a retried batch, a close, the reaper), deciding on that caller's clock and late-data
window.

On MongoDB 8.0+ an append sends all of these steps at once, as one ordered client-level bulk
write (`counting_writes`, used by MongoEventLog.append), counting on the sessions as it read
them before inserting: the same steps in the same order, so a command cut short anywhere leaves
what a crash between two of them leaves. `count_batch` takes the long way, a step per command,
reading each session again: for what such a command left undone, and for the finishers.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from pymongo import UpdateMany, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.documents import Document, increments
from adapters.mongodb.event_documents import from_document as event_from_document
from adapters.mongodb.session_documents import from_document, to_document
from domain.errors import Contended
from domain.events import Event, sort_batch
from domain.session import DECIDED_BY, LIFE_CHANGES, Session

# Older marks than this belong to an append that died; younger ones may still be in flight.
STALE_AFTER = timedelta(seconds=30)
ATTEMPTS = 20
# Added to an update guarded on a session's `_id` and state as read, with upsert: when the
# session changed, the insert the upsert then attempts would change the `_id` from the filter,
# which MongoDB refuses (ImmutableField), so it never inserts, and an ordered bulk write stops
# at the update instead of going on as if it had counted.
NEVER_INSERTED: Document = {"$setOnInsert": {"_id": "never inserted"}}


@dataclass(frozen=True)
class CountingWrites:
    """The counting steps of one batch as write models of an ordered client-level bulk write."""

    writes: list[UpdateOne | UpdateMany]  # first a count per session, as in `counts`
    # The session of each count, and whether the count leaves it pending a new settlement.
    counts: list[tuple[str, bool]]

    def repriced_before(self, position: int) -> frozenset[str]:
        """The sessions left pending a settlement by the counts before `position` in `writes`
        (those done when the command stopped there)."""
        return frozenset(s for s, repriced in self.counts[:position] if repriced)


def counting_writes(
    db: AsyncDatabase[Document],
    tenant_id: str,
    token: ObjectId,
    events: Sequence[Event],
    read: Mapping[str, Document],
    now: datetime,
) -> CountingWrites:
    """Counting `events`, stored under `token`, into their sessions as `read` (which take every
    one: sort_batch decided on the same documents), then removing the marks and the token. Each
    count is guarded on its session as read and cannot insert (NEVER_INSERTED): a session that
    changed since stops the command there, and the long way (count_batch) decides again."""
    by_session = _by_session(events)
    writes: list[UpdateOne | UpdateMany] = []
    counts = []
    for session_id, taken in by_session.items():
        found = read[session_id]
        guard, update, was_repriced = _count(found, token, taken, now)
        writes.append(
            UpdateOne(
                {"_id": found["_id"], **guard},
                {**update, **NEVER_INSERTED},
                upsert=True,
                namespace=f"{db.name}.sessions",
            )
        )
        counts.append((session_id, was_repriced))
    (marks, unmark), (tokens, untoken) = _cleanup(tenant_id, token, by_session)
    writes.append(UpdateMany(marks, unmark, namespace=f"{db.name}.events"))
    writes.append(UpdateMany(tokens, untoken, namespace=f"{db.name}.sessions"))
    return CountingWrites(writes, counts)


async def count_batch(
    db: AsyncDatabase[Document],
    tenant_id: str,
    token: ObjectId,
    inserted: Sequence[Event],
    now: datetime,
    window: timedelta,
) -> tuple[list[tuple[Event, str]], frozenset[str]]:
    """Count the events stored under `token` that are not counted yet. Returns those refused
    when counted (deleted), with the reason, and the ended sessions left pending a new
    settlement."""
    by_session = _by_session(inserted)
    if not by_session:
        return [], frozenset()
    refused: list[tuple[Event, str]] = []
    repriced: set[str] = set()
    for session_id, events in by_session.items():
        refused_here, was_repriced = await _count_session(
            db, tenant_id, session_id, token, events, now, window
        )
        refused += refused_here
        if was_repriced:
            repriced.add(session_id)
    (marks, unmark), (tokens, untoken) = _cleanup(tenant_id, token, by_session)
    await db["events"].update_many(marks, unmark)
    await db["sessions"].update_many(tokens, untoken)
    return refused, frozenset(repriced)


async def _count_session(
    db: AsyncDatabase[Document],
    tenant_id: str,
    session_id: str,
    token: ObjectId,
    events: list[Event],
    now: datetime,
    window: timedelta,
) -> tuple[list[tuple[Event, str]], bool]:
    key = {"tenant_id": tenant_id, "id": session_id}
    for _ in range(ATTEMPTS):
        found = await db["sessions"].find_one(key)
        if found is not None and decided(found, token):
            # Another finisher decided them: its refusals are recorded with its count, and may
            # still be in the log (it stopped before deleting them).
            refused = _recorded_refusals(found, token, events)
            await _delete(db, tenant_id, session_id, token, refused)
            return refused, False
        # Checked after reading the session: marks gone means another caller counted them (and
        # moved event_count, which the guarded update below checks), so nothing is counted twice.
        marked = {"tenant_id": tenant_id, "session_id": session_id, "batch": token}
        if not await db["events"].count_documents(marked, limit=1):
            # Counted by another caller, or refused by it (and deleted): read its decision.
            again = await db["sessions"].find_one(key)
            return ([] if again is None else _recorded_refusals(again, token, events)), False
        session = None if found is None else from_document(found)
        taken, refused = _decide(session, events, now, window)
        if found is None:
            await _delete(db, tenant_id, session_id, token, refused)
            return refused, False
        # The count records what it refused in the same guarded write, before deleting it: so
        # another finisher of the batch, deciding otherwise, finds the decision made (its own
        # guarded count fails) and takes it, rather than counting an event deleted meanwhile.
        guard, update, was_repriced = _count(found, token, taken, now, refused)
        counted = await db["sessions"].update_one(guard, update)
        if counted.modified_count:
            await _delete(db, tenant_id, session_id, token, refused)
            return refused, was_repriced
        # The session changed since it was read: decide again.
    raise Contended(f"session {session_id} changed too often to count its events; retry the batch")


def decided(session: Document, token: ObjectId) -> bool:
    """Whether a count of `token` into `session` is done: the token is recorded until the
    batch's marks are removed, its refusals (if any) for good."""
    return token in session.get("counting", []) or str(token) in session.get("refusals", {})


def counted(session: Document, token: ObjectId, sequence_no: int) -> bool:
    """Whether the event `sequence_no`, marked `token`, is counted into `session` (as read)."""
    in_count = token in session.get("counting", [])
    return in_count and not refused_when_counted(session, token, sequence_no)


def refused_when_counted(session: Document, token: ObjectId, sequence_no: int) -> bool:
    """Whether the count of `token` into `session` (as read) refused the event `sequence_no`."""
    return sequence_no in _refusals(session, token)


def _refusals(session: Document, token: ObjectId) -> dict[int, str]:
    """The reasons the count of `token` into `session` (as read) refused events, by number."""
    return dict(session.get("refusals", {}).get(str(token), []))


def refusal_of(session: Document, sequence_no: int) -> str | None:
    """Why a count into `session` (as read) refused the event `sequence_no`, if one did."""
    for refused in session.get("refusals", {}).values():
        if (why := dict(refused).get(sequence_no)) is not None:
            return str(why)
    return None


def is_stale(token: ObjectId) -> bool:
    """Whether the append that marked events with `token` has died (its marks are that old)."""
    return token < _stale_before()


def _recorded_refusals(
    found: Document, token: ObjectId, events: list[Event]
) -> list[tuple[Event, str]]:
    """Those of `events` that the count of `token` into the session `found` refused."""
    reasons = _refusals(found, token)
    return [(e, reasons[e.sequence_no]) for e in events if e.sequence_no in reasons]


async def _delete(
    db: AsyncDatabase[Document],
    tenant_id: str,
    session_id: str,
    token: ObjectId,
    refused: list[tuple[Event, str]],
) -> None:
    """Delete the refused events of the batch `token` from the log (again: a no-op)."""
    if refused:
        await db["events"].delete_many(
            {
                "tenant_id": tenant_id,
                "session_id": session_id,
                "batch": token,
                "sequence_no": {"$in": [e.sequence_no for e, _ in refused]},
            }
        )


def _count(
    found: Document,
    token: ObjectId,
    taken: list[Event],
    now: datetime,
    refused: Sequence[tuple[Event, str]] = (),
) -> tuple[Document, Document, bool]:
    """The update that counts `taken` into the session `found` (which takes them all): its
    filter, guarded on the session as read and on not having counted `token`; the update, which
    records `token` and the batch's events the session `refused` (`refusals.<token>`: number and
    reason); and whether the count leaves the session pending a new settlement."""
    session = from_document(found)
    revision = session.charge_revision
    added = session.record_events(taken, now)
    document = to_document(session)
    guard = {
        "tenant_id": session.tenant_id,
        "id": session.id,
        "counting": {"$ne": token},
        f"refusals.{token}": {"$exists": False},
        "event_count": found["event_count"],
        **{f: found.get(f) for f in DECIDED_BY},
    }
    update = {
        "$inc": {**increments("usage", added), "event_count": len(taken)},
        "$max": {"max_sequence_no": session.max_sequence_no},
        "$set": {f: document[f] for f in LIFE_CHANGES},
        "$push": {"counting": token},
    }
    if refused:
        update["$set"][f"refusals.{token}"] = [[e.sequence_no, why] for e, why in refused]
    return guard, update, session.charge_revision != revision


def _cleanup(
    tenant_id: str, token: ObjectId, session_ids: Iterable[str]
) -> tuple[tuple[Document, Document], tuple[Document, Document]]:
    """The last two steps, as (filter, update): remove the marks of the events in the sessions
    that counted them, then the token from those sessions. Only theirs: a finisher counts the
    sessions it was given, and the batch's events in the others are still to be counted."""
    ids = list(session_ids)
    return (
        (
            {"tenant_id": tenant_id, "session_id": {"$in": ids}, "batch": token},
            {"$unset": {"batch": ""}},
        ),
        (
            {"tenant_id": tenant_id, "id": {"$in": ids}, "counting": token},
            {"$pull": {"counting": token}},
        ),
    )


def _by_session(events: Iterable[Event]) -> dict[str, list[Event]]:
    by_session: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_session[event.session_id].append(event)
    return by_session


def _decide(
    session: Session | None, events: list[Event], now: datetime, window: timedelta
) -> tuple[list[Event], list[tuple[Event, str]]]:
    """The events the session takes now, and those it refuses with the reason (as sort_batch
    decides them, on the session as it is when they are counted)."""
    if session is None:
        return [], [(e, "session_not_found") for e in events]
    batch = sort_batch(enumerate(events), {session.id: session}, now, window)
    taken = [e for _, e in batch.new]
    return taken, [(e, reason) for _, e, reason in batch.refused]


def uncounted(tenant_id: str, into: str) -> Document:
    """A `$lookup` stage over sessions: into the field `into`, the events of each session that
    an append which died left marked (older than STALE_AFTER), for `finish_batches`."""
    return {
        "$lookup": {
            "from": "events",
            "localField": "id",
            "foreignField": "session_id",
            "pipeline": [{"$match": {"tenant_id": tenant_id, "batch": {"$lt": _stale_before()}}}],
            "as": into,
        }
    }


async def finish_stale_batches(
    db: AsyncDatabase[Document],
    tenant_id: str,
    now: datetime,
    window: timedelta,
    session_ids: Iterable[str] | None = None,
) -> None:
    """Count what appends that died left uncounted (of these sessions, or of the tenant), deciding
    on the caller's `now` and late-data `window` as the append would have."""
    query: Document = {"tenant_id": tenant_id, "batch": {"$lt": _stale_before()}}
    if session_ids is not None:
        query["session_id"] = {"$in": list(session_ids)}
    await finish_batches(db, tenant_id, await db["events"].find(query).to_list(None), now, window)


async def finish_batches(
    db: AsyncDatabase[Document],
    tenant_id: str,
    marked: Iterable[Document],
    now: datetime,
    window: timedelta,
) -> None:
    """Count the `marked` events (documents, as stored) that appends which died left, as
    `finish_stale_batches` does. (What they refuse is recorded on the sessions, for the
    appends that meet those events again: nobody is waiting for this call's answer.)"""
    by_token: dict[ObjectId, list[Event]] = defaultdict(list)
    for document in marked:
        by_token[document["batch"]].append(event_from_document(document))
    for token, events in by_token.items():
        await count_batch(db, tenant_id, token, events, now, window)


def _stale_before() -> ObjectId:
    # Marks are ObjectIds stamped by the wall clock, so their age is read on it.
    return ObjectId.from_datetime(datetime.now(UTC) - STALE_AFTER)
