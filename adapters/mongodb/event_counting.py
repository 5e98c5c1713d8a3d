"""Counting stored events into their sessions exactly once, without a transaction.

An append inserts its new events marked with a batch token (an ObjectId, so it carries the time
it was made), then counts them into each session (Session.record_events: usage, counters,
last_seen_at, a provisional end, a new charge revision) in one update guarded on the session as
it was read and on `counting != token`, which also records the token in the session's `counting`
list: so the step happens at most once per session, whoever runs it, and a session that changed
in between is read and decided again. Events the session no longer takes when they are counted
(it ended, the window passed) are deleted and refused. Then the marks are removed. A crash
between the steps leaves marked events behind; `finish_stale_batches` completes them later (a
retried batch, a close, the reaper).
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
from domain.events import Event
from domain.session import DECIDED_BY, LIFE_CHANGES
from domain.tenants import TenantSettings

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
        {"tenant_id": tenant_id, "counting": token}, {"$pull": {"counting": token}}
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
    for _ in range(ATTEMPTS):
        found = await db["sessions"].find_one(key)
        if found is not None and token in found.get("counting", []):
            return [], False  # another finisher counted them
        refused: list[tuple[Event, str]] = []
        taken: list[Event] = []
        if found is None:
            refused = [(e, "session_not_found") for e in events]
        else:
            session = from_document(found)
            for event in events:
                reason = session.refusal(event.at, now, window)
                if reason is None:
                    taken.append(event)
                else:
                    refused.append((event, reason))
        if taken:
            assert found is not None
            revision = session.charge_revision
            added = session.record_events(taken, now)
            document = to_document(session)
            counted = await db["sessions"].update_one(
                {**key, "counting": {"$ne": token}, **{f: found.get(f) for f in DECIDED_BY}},
                {
                    "$inc": {**increments("usage", added), "event_count": len(taken)},
                    "$max": {"max_sequence_no": session.max_sequence_no},
                    "$set": {f: document[f] for f in LIFE_CHANGES},
                    "$push": {"counting": token},
                },
            )
            if not counted.modified_count:
                continue  # the session changed since it was read: decide again
        if refused:
            await db["events"].delete_many(
                {
                    "tenant_id": tenant_id,
                    "batch": token,
                    "$or": [
                        {"session_id": e.session_id, "sequence_no": e.sequence_no}
                        for e, _ in refused
                    ],
                }
            )
        return refused, bool(taken) and session.charge_revision != revision
    raise Conflict(f"session {session_id} changed too often to count its events; retry the batch")


async def finish_stale_batches(
    db: AsyncDatabase[Document],
    tenant_id: str,
    session_ids: Iterable[str] | None = None,
    window: timedelta | None = None,
) -> None:
    """Count what appends that died left uncounted (of these sessions, or of the tenant)."""
    now = datetime.now(UTC)
    cutoff = ObjectId.from_datetime(now - STALE_AFTER)
    query: Document = {"tenant_id": tenant_id, "batch": {"$lt": cutoff}}
    if session_ids is not None:
        query["session_id"] = {"$in": list(session_ids)}
    by_token: dict[ObjectId, list[Event]] = defaultdict(list)
    async for document in db["events"].find(query):
        by_token[document["batch"]].append(event_from_document(document))
    window = window or TenantSettings().late_data_window
    for token, events in by_token.items():
        await count_batch(db, tenant_id, token, events, now, window)
