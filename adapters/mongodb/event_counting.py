"""Adding stored events' meters to their sessions exactly once, without a transaction.

An append inserts its new events marked with a batch token (an ObjectId, so it carries the time
it was made), then adds them to each session in one guarded update that also records the token
in the session's `counting` list: the guard `counting != token` makes that step happen at most
once per session, whoever runs it. Then the marks are removed. A crash between the steps leaves
marked events behind; `finish_stale_batches` completes them later (a retried batch, a close, the
reaper), and events whose session ended before they were counted are removed, as if the ended
session had refused them.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongodb.documents import Document, increments
from adapters.mongodb.event_documents import from_document
from domain.events import Event
from domain.session import SessionStatus
from domain.usage import Usage, add_usage

# Older marks than this belong to an append that died; younger ones may still be in flight.
STALE_AFTER = timedelta(seconds=30)


async def count_batch(
    db: AsyncDatabase[Document], tenant_id: str, token: ObjectId, inserted: Sequence[Event]
) -> list[Event]:
    """Count the events stored under `token`; return those refused because their session
    ended first (they are deleted)."""
    by_session: dict[str, list[Event]] = defaultdict(list)
    for event in inserted:
        by_session[event.session_id].append(event)
    refused: list[Event] = []
    for session_id, events in by_session.items():
        usage: Usage = {}
        for event in events:
            usage = add_usage(usage, event.meters)
        key = {"tenant_id": tenant_id, "id": session_id}
        counted = await db["sessions"].update_one(
            {**key, "status": SessionStatus.ACTIVE.value, "counting": {"$ne": token}},
            {
                "$inc": {**increments("usage", usage), "event_count": len(events)},
                "$max": {"max_sequence_no": max(e.sequence_no for e in events)},
                "$push": {"counting": token},
            },
        )
        if counted.modified_count:
            continue
        session = await db["sessions"].find_one(key, {"counting": 1})
        if session is None or token not in session.get("counting", []):
            await db["events"].delete_many(
                {"tenant_id": tenant_id, "session_id": session_id, "batch": token}
            )
            refused += events
    await db["events"].update_many(
        {"tenant_id": tenant_id, "batch": token}, {"$unset": {"batch": ""}}
    )
    await db["sessions"].update_many(
        {"tenant_id": tenant_id, "counting": token}, {"$pull": {"counting": token}}
    )
    return refused


async def finish_stale_batches(
    db: AsyncDatabase[Document], tenant_id: str, session_ids: Iterable[str] | None = None
) -> None:
    """Count what appends that died left uncounted (of these sessions, or of the tenant)."""
    cutoff = ObjectId.from_datetime(datetime.now(UTC) - STALE_AFTER)
    query: Document = {"tenant_id": tenant_id, "batch": {"$lt": cutoff}}
    if session_ids is not None:
        query["session_id"] = {"$in": list(session_ids)}
    by_token: dict[ObjectId, list[Event]] = defaultdict(list)
    async for document in db["events"].find(query):
        by_token[document["batch"]].append(from_document(document))
    for token, events in by_token.items():
        await count_batch(db, tenant_id, token, events)
