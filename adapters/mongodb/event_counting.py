"""Counting stored events into their sessions exactly once, without a transaction.

An append inserts its new events marked with a batch token (an ObjectId, so it carries the time
it was made), then counts them into each session (Session.record_events: usage, counters,
last_seen_at, a provisional end, a new charge revision) in one update guarded on the session as
it was read and on `counting != token`, which also records the token in the session's `counting`
list: so the step happens at most once per session, whoever runs it, and a session that changed
in between is read and decided again. Events the session no longer takes when they are counted
(it ended, the window passed) are deleted and refused. Then the marks are removed. A crash
between the steps leaves marked events behind; `finish_stale_batches` completes them later (a
retried batch, a close, the reaper), deciding on that caller's clock and late-data window.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.documents import Document, increments
from adapters.mongodb.event_documents import from_document as event_from_document
from adapters.mongodb.session_documents import from_document, to_document
from domain.errors import Conflict
from domain.events import Event, sort_batch
from domain.session import DECIDED_BY, LIFE_CHANGES, Session

# Older marks than this belong to an append that died; younger ones may still be in flight.
STALE_AFTER = timedelta(seconds=30)
ATTEMPTS = 20


async def count_batch(
    db: AsyncDatabase[Document],
    tenant_id: str,
    token: ObjectId,
    inserted: Sequence[Event],
    now: datetime,
    window: timedelta,
) -> tuple[list[tuple[Event, str]], frozenset[str]]:
    """Count the events stored under `token`. Returns those refused when counted (deleted),
    with the reason, and the ended sessions left pending a new settlement."""
    by_session: dict[str, list[Event]] = defaultdict(list)
    for event in inserted:
        by_session[event.session_id].append(event)
    refused: list[tuple[Event, str]] = []
    repriced: set[str] = set()
    for session_id, events in by_session.items():
        refused_here, was_repriced = await _count_session(
            db, tenant_id, session_id, token, events, now, window
        )
        refused += refused_here
        if was_repriced:
            repriced.add(session_id)
    await db["events"].update_many(
        {"tenant_id": tenant_id, "batch": token}, {"$unset": {"batch": ""}}
    )
    await db["sessions"].update_many(
        {"tenant_id": tenant_id, "id": {"$in": list(by_session)}, "counting": token},
        {"$pull": {"counting": token}},
    )
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
    refused: list[tuple[Event, str]] = []
    for _ in range(ATTEMPTS):
        found = await db["sessions"].find_one(key)
        if found is not None and token in found.get("counting", []):
            return refused, False  # another finisher counted them
        # Checked after reading the session: marks gone means another caller counted them (and
        # moved event_count, which the guarded update below checks), so nothing is counted twice.
        marked = {"tenant_id": tenant_id, "session_id": session_id, "batch": token}
        if not await db["events"].count_documents(marked, limit=1):
            return refused, False
        session = None if found is None else from_document(found)
        taken, refused_now = _decide(session, events, now, window)
        # Refused first: a crash after the count must not leave them in the log.
        if refused_now:
            await db["events"].delete_many(
                {
                    **marked,
                    "sequence_no": {"$in": [e.sequence_no for e, _ in refused_now]},
                }
            )
            refused += refused_now
            events = taken
        if session is None or not taken:
            return refused, False
        assert found is not None
        revision = session.charge_revision
        added = session.record_events(taken, now)
        document = to_document(session)
        counted = await db["sessions"].update_one(
            {
                **key,
                "counting": {"$ne": token},
                "event_count": found["event_count"],
                **{f: found.get(f) for f in DECIDED_BY},
            },
            {
                "$inc": {**increments("usage", added), "event_count": len(taken)},
                "$max": {"max_sequence_no": session.max_sequence_no},
                "$set": {f: document[f] for f in LIFE_CHANGES},
                "$push": {"counting": token},
            },
        )
        if counted.modified_count:
            return refused, session.charge_revision != revision
        # The session changed since it was read: decide again.
    raise Conflict(f"session {session_id} changed too often to count its events; retry the batch")


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


async def finish_stale_batches(
    db: AsyncDatabase[Document],
    tenant_id: str,
    now: datetime,
    window: timedelta,
    session_ids: Iterable[str] | None = None,
) -> bool:
    """Count what appends that died left uncounted (of these sessions, or of the tenant), deciding
    on the caller's `now` and late-data `window` as the append would have; True when there was
    any."""
    # Marks are ObjectIds stamped by the wall clock, so their age is read on it.
    cutoff = ObjectId.from_datetime(datetime.now(UTC) - STALE_AFTER)
    query: Document = {"tenant_id": tenant_id, "batch": {"$lt": cutoff}}
    if session_ids is not None:
        query["session_id"] = {"$in": list(session_ids)}
    by_token: dict[ObjectId, list[Event]] = defaultdict(list)
    async for document in db["events"].find(query):
        by_token[document["batch"]].append(event_from_document(document))
    for token, events in by_token.items():
        await count_batch(db, tenant_id, token, events, now, window)
    return bool(by_token)
