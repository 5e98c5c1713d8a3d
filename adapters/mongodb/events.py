"""The event log in MongoDB: a unique index stores each (session, sequence_no) once, and
event_counting.py adds what was stored to the sessions exactly once.

An append is two round trips on MongoDB 8.0+ when its events are new and their sessions did not
change meanwhile (a client's batch into its active session):

1. `find` the batch's sessions: sort_batch decides on them what each session takes (and what
   the caller may write), and Session.record_events what counting it changes;
2. one ordered client-level `bulkWrite` over both collections: insert the new events marked
   with a batch token, then event_counting's steps (count each session, guarded on it as read
   in 1; remove the marks; remove the token).

The command stops at the first event stored before (a retry, a concurrent copy of the batch) or
at the first session that changed since 1, and the append finishes the long way: the rest of
the events by an unordered insert_many (which names every duplicate), then count_batch for what
is not counted yet (3 round trips a session, reading it again, and 2 to remove marks and token);
for duplicates, one `find` of their marks (_stored_before: one a dead append left is finished
first, a retry being how such a batch gets counted; one a count refused is answered as refused;
one another append has not counted yet is waited for, its count may refuse it). So a batch of
duplicates only is 4 round trips, one that is half duplicates 9.
A server before 8.0, which has no bulkWrite command, takes the long way for every batch. Events
refused by their sessions (ended, late, the meter limit) cost one `find` more: of those stored
before, which are duplicates, not errors; one refused by the meter limit, one more before the
insert: of its session's new events, those stored before, which count towards no limit.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo import InsertOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, ClientBulkWriteException, InvalidOperation

from adapters.mongodb.documents import DUPLICATE_KEY, Document, duplicates_in
from adapters.mongodb.errors import raises_storage_errors
from adapters.mongodb.event_counting import (
    count_batch,
    counted,
    counting_writes,
    decided,
    finish_stale_batches,
    is_stale,
    refusal_of,
    refused_when_counted,
)
from adapters.mongodb.event_documents import from_document, to_document
from adapters.mongodb.session_documents import from_document as from_session_document
from adapters.polling import polled
from application.events.ports import EventLog
from domain.events import Admission, BatchOutcome, Distribution, Event, ended_since, sort_batch

Key = tuple[str, int]  # an event's (session_id, sequence_no)

# How long an append waits for another append's count of the events it met stored (a copy of
# the batch in flight finishes in milliseconds), and how it answers those whose count is still
# not decided then (the other append died less than STALE_AFTER ago, or is that slow).
IN_FLIGHT_WAIT_SECONDS = 5.0
IN_FLIGHT = "in_flight: another request is still storing this event; send it again"


@raises_storage_errors
class MongoEventLog(EventLog):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db
        self._events = db["events"]
        self._one_command = True  # False once the server says it has no bulkWrite (before 8.0)

    async def append(
        self,
        tenant_id: str,
        batch: Sequence[tuple[int, Event]],
        now: datetime,
        window: timedelta,
        admits: Admission | None = None,
    ) -> BatchOutcome:
        found = await self._sessions(tenant_id, {e.session_id for _, e in batch})
        sessions = {i: from_session_document(d) for i, d in found.items()}
        sorted_batch = sort_batch(batch, sessions, now, window, admits)
        if looked_up := sorted_batch.to_look_up():
            # Counted ones only: one another append left uncounted stays new, so that its insert
            # meets it and _stored_before learns its fate (finishing that append if it died).
            before = await self._counted(tenant_id, looked_up, found)
            sorted_batch = sort_batch(batch, sessions, now, window, admits, before)
        inserted, refused, met, repriced = await self._store(
            tenant_id, [e for _, e in sorted_batch.new], found, now, window
        )
        # What the batch refused, and what its insert met stored by another append, was stored
        # before only if it is stored and its count did not refuse it; else it was refused then,
        # or that count is still to come (in flight), whatever this batch made of it.
        refused_by_batch = [e for _, e, _ in sorted_batch.refused]
        stored_before, refused_before, in_flight = await self._stored_before(
            tenant_id, refused_by_batch, met, now, window
        )
        sorted_batch.refused = [
            (i, e, IN_FLIGHT if (e.session_id, e.sequence_no) in in_flight else why)
            for i, e, why in sorted_batch.refused
        ]
        # Events their session no longer took when they were counted were refused then, and so
        # were their numbers repeated in the batch.
        reasons = {(e.session_id, e.sequence_no): why for e, why in refused}
        reasons |= refused_before | dict.fromkeys(in_flight, IN_FLIGHT)
        answered = {r.index for r in sorted_batch.rejections}
        answered |= {i for i, _, _ in sorted_batch.refused}
        sorted_batch.refused += [
            (i, e, reasons[(e.session_id, e.sequence_no)])
            for i, e in batch
            if (e.session_id, e.sequence_no) in reasons and i not in answered
        ]
        rejections = sorted_batch.rejected(stored_before)
        counted = inserted - len(refused)
        since = ended_since(sessions, [e for _, e in sorted_batch.new])
        duplicates = len(batch) - counted - len(rejections)
        return BatchOutcome(counted, duplicates, rejections, repriced, since)

    async def find(
        self,
        tenant_id: str,
        session_id: str,
        limit: int,
        after_sequence_no: int = 0,
        type: str | None = None,
        label: str | None = None,
    ) -> list[Event]:
        query: Document = {
            "tenant_id": tenant_id,
            "session_id": session_id,
            "sequence_no": {"$gt": after_sequence_no},
        }
        if type is not None:
            query["type"] = type
        if label is not None:
            query["label"] = label
        cursor = self._events.find(query, sort=[("sequence_no", 1)], limit=limit)
        return [from_document(document) async for document in cursor]

    async def distribution(self, tenant_id: str, session_id: str, field: str) -> Distribution:
        pipeline: list[Document] = [
            {"$match": {"tenant_id": tenant_id, "session_id": session_id, field: {"$ne": None}}},
            {"$group": {"_id": f"${field}", "n": {"$sum": 1}}},
        ]
        counts = {g["_id"]: g["n"] async for g in await self._events.aggregate(pipeline)}
        return Distribution(total=sum(counts.values()), counts=counts)

    async def _sessions(self, tenant_id: str, session_ids: set[str]) -> dict[str, Document]:
        cursor = self._db["sessions"].find(
            {"tenant_id": tenant_id, "id": {"$in": sorted(session_ids)}}
        )
        return {document["id"]: document async for document in cursor}

    async def _store(
        self,
        tenant_id: str,
        events: list[Event],
        read: dict[str, Document],
        now: datetime,
        window: timedelta,
    ) -> tuple[int, list[tuple[Event, str]], list[Event], frozenset[str]]:
        """Insert the new `events` and count them into their sessions, `read` before: how many
        were inserted, those refused when counted (deleted since), those met stored by another
        append, and the ended sessions left pending a new settlement."""
        if not events:
            return 0, [], [], frozenset()
        token = ObjectId()
        inserts = [
            InsertOne({**to_document(tenant_id, e), "batch": token}, namespace=self._namespace)
            for e in events
        ]
        counting = counting_writes(self._db, tenant_id, token, events, read, now)
        done: list[Event] = []  # inserted by the command
        rest = events  # left for the long way to insert
        met: list[Event] = []  # stored before
        repriced: frozenset[str] = frozenset()
        if self._one_command:
            try:
                await self._db.client.bulk_write([*inserts, *counting.writes], ordered=True)
                return len(events), [], [], counting.repriced_before(len(counting.writes))
            except InvalidOperation:  # not sent: the server is older than MongoDB 8.0
                self._one_command = False
            except ClientBulkWriteException as error:
                stopped, code = _stopped_at(error)
                if stopped < len(events):  # at an event stored before
                    if code != DUPLICATE_KEY:
                        raise
                    done, rest = events[:stopped], events[stopped + 1 :]
                    met.append(events[stopped])
                else:  # at a session that changed since it was read: counted up to there
                    done, rest = events, []
                    repriced = counting.repriced_before(stopped - len(events))
        more, met_too = await self._insert(tenant_id, rest, token)
        inserted, met = [*done, *more], [*met, *met_too]
        refused, recounted = await count_batch(self._db, tenant_id, token, inserted, now, window)
        # What it met (maybe a retry of a batch whose append died) is for _stored_before.
        return len(inserted), refused, met, repriced | recounted

    @property
    def _namespace(self) -> str:
        return f"{self._db.name}.events"

    async def _insert(
        self, tenant_id: str, events: list[Event], token: ObjectId
    ) -> tuple[list[Event], list[Event]]:
        """Insert what is new, marked with `token`: the events this call stored, and those that
        were stored already."""
        if not events:
            return [], []
        documents = [{**to_document(tenant_id, e), "batch": token} for e in events]
        try:
            await self._events.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            failed = duplicates_in(error)
            stored = [e for i, e in enumerate(events) if i not in failed]
            return stored, [events[i] for i in sorted(failed)]
        return events, []

    async def _counted(
        self, tenant_id: str, events: list[Event], sessions: dict[str, Document]
    ) -> set[Key]:
        """The keys of these events that are stored and counted into their `sessions` (as read):
        without an append's mark, or with the mark of a token the session has counted and not
        refused them under (event_counting: the marks go after the count, refused events after
        their refusal is recorded)."""
        return {
            (session_id, number)
            for (session_id, number), token in (await self._marks(tenant_id, events)).items()
            if token is None or counted(sessions[session_id], token, number)
        }

    async def _stored_before(
        self,
        tenant_id: str,
        refused: list[Event],
        met: list[Event],
        now: datetime,
        window: timedelta,
    ) -> tuple[set[Key], dict[Key, str], set[Key]]:
        """Of these events (`refused` by this batch, `met` stored by another append on insert),
        the keys of those stored and not refused by their count; those their count refused,
        with the reason recorded (deleted since, or about to be: a finisher died between); and
        those in flight. A dead append's batch among them is finished first, so that its
        events' fate is known (a retry is how such a batch gets counted). One stored by an
        append younger than STALE_AFTER and not counted yet is waited for, up to
        IN_FLIGHT_WAIT_SECONDS, a look (two `find`s) at a time: its count may still refuse it
        (the meter's cap, judged then), so it is answered once its fate is known; one still
        not counted then is in flight, to be sent again."""
        events = [*refused, *met]
        if not events:
            return set(), {}, set()
        marks = await self._marks(tenant_id, events)
        met_keys = {(e.session_id, e.sequence_no) for e in met}
        if all(token is None for token in marks.values()) and met_keys <= marks.keys():
            return set(marks), {}, set()  # the usual: counted long ago, or never stored
        ids = {e.session_id for e in events}
        looks: list[tuple[dict[Key, ObjectId | None], dict[str, Document], set[Key]]] = []

        async def known() -> bool:
            """Whether every count of these events is decided, read again (marks first: they
            go after the count, so a mark gone means a session read after it counted)."""
            seen = await self._marks(tenant_id, events) if looks else marks
            if any(token is not None and is_stale(token) for token in seen.values()):
                await finish_stale_batches(self._db, tenant_id, now, window, ids)
                seen = await self._marks(tenant_id, events)
            sessions = await self._sessions(tenant_id, ids)
            looks.append((seen, sessions, _in_flight(seen, sessions)))
            return not looks[-1][2]

        await polled(known, IN_FLIGHT_WAIT_SECONDS)
        marks, sessions, in_flight = looks[-1]
        stored, refused_when = set(), {}
        for event in events:
            key, session = (event.session_id, event.sequence_no), sessions.get(event.session_id, {})
            token = marks.get(key)
            if key in in_flight:
                continue
            if key in marks and (token is None or not refused_when_counted(session, token, key[1])):
                stored.add(key)
            elif (why := refusal_of(session, key[1])) is not None:
                refused_when[key] = why
        return stored, refused_when, in_flight

    async def _marks(self, tenant_id: str, events: list[Event]) -> dict[Key, ObjectId | None]:
        """The keys of these events that are stored, with the batch token each is marked with
        (None: counted, its marks gone)."""
        cursor = self._events.find(
            _keys(tenant_id, events), {"session_id": 1, "sequence_no": 1, "batch": 1}
        )
        return {(d["session_id"], d["sequence_no"]): d.get("batch") async for d in cursor}


def _keys(tenant_id: str, events: list[Event]) -> Document:
    """The filter of these events' documents."""
    return {
        "tenant_id": tenant_id,
        "$or": [{"session_id": e.session_id, "sequence_no": e.sequence_no} for e in events],
    }


def _in_flight(marks: dict[Key, ObjectId | None], sessions: dict[str, Document]) -> set[Key]:
    """The keys of events marked by an append whose count into their session (as read) is not
    decided yet: it is under way, or died less than STALE_AFTER ago."""
    return {
        key
        for key, token in marks.items()
        if token is not None and not decided(sessions.get(key[0], {}), token)
    }


def _stopped_at(error: ClientBulkWriteException) -> tuple[int, int]:
    """Where an ordered bulk write stopped at a write error, and its code; any other failure
    (the server unreachable, a write concern not met) is raised again: how much of the command
    was done is not known, and what it left marked is for the finishers."""
    details = error.details
    if details.get("error") is not None or details.get("writeConcernErrors"):
        raise error
    (first,) = details["writeErrors"]  # an ordered write stops at its first
    return int(first["idx"]), int(first["code"])
