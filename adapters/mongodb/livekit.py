from bisect import bisect_right
from collections.abc import Collection
from contextlib import suppress
from datetime import datetime, timedelta
from urllib.parse import unquote

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from adapters.mongodb import event_documents
from adapters.mongodb.documents import Document, duplicates_in, increments, wall_clock
from adapters.mongodb.errors import raises_storage_errors
from adapters.mongodb.event_counting import counted
from application.livekit.ports import FinishedRooms, LiveKitAccounts, TrackLog, WebhookLog
from domain.errors import Conflict, Contended, NotFound
from domain.event_gaps import merged
from domain.livekit import (
    LiveKitAccount,
    TrackChange,
    TrackReport,
    report_track,
    stays_end_required,
    track_events,
)
from domain.session import ChargeState, SessionStatus, settled_again_on_usage

# A guarded write lost to a concurrent report is decided again on what that report left.
ATTEMPTS = 20


@raises_storage_errors
class MongoLiveKitAccounts(LiveKitAccounts):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._accounts = db["livekit_accounts"]

    async def add(self, account: LiveKitAccount) -> None:
        # Only the key's own tenant may replace its secret: for another tenant the filter
        # matches nothing and the upsert collides with the key's unique index. An account
        # without a url keeps the stored one.
        changes = {"api_secret": account.api_secret}
        if account.url is not None:
            changes["url"] = account.url
        try:
            await self._accounts.update_one(
                {"api_key": account.api_key, "tenant_id": account.tenant_id},
                {"$set": changes},
                upsert=True,
            )
        except DuplicateKeyError:
            raise Conflict(
                f"the LiveKit API key {account.api_key} belongs to another tenant"
            ) from None

    async def get(self, api_key: str) -> LiveKitAccount | None:
        found = await self._accounts.find_one({"api_key": api_key})
        return None if found is None else account_from_document(found)

    async def of_tenant(self, tenant_id: str) -> list[LiveKitAccount]:
        cursor = self._accounts.find({"tenant_id": tenant_id}, sort=[("api_key", 1)])
        return [account_from_document(found) async for found in cursor]

    async def set_url(self, tenant_id: str, api_key: str, url: str | None) -> LiveKitAccount:
        found = await self._accounts.find_one_and_update(
            {"api_key": api_key, "tenant_id": tenant_id},
            {"$set": {"url": url}},
            return_document=ReturnDocument.AFTER,
        )
        if found is None:
            raise NotFound(f"no LiveKit API key {api_key}")
        return account_from_document(found)


def account_from_document(found: Document) -> LiveKitAccount:
    return LiveKitAccount(
        found["api_key"], found["tenant_id"], found["api_secret"], found.get("url")
    )


@raises_storage_errors
class MongoWebhookLog(WebhookLog):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._webhooks = db["webhooks"]

    async def seen(self, tenant_id: str, webhook_id: str) -> bool:
        found = await self._webhooks.find_one(
            {"tenant_id": tenant_id, "id": webhook_id}, {"_id": 1}
        )
        return found is not None

    async def record(self, tenant_id: str, webhook_id: str, at: datetime) -> bool:
        try:
            done = await self._webhooks.update_one(
                {"tenant_id": tenant_id, "id": webhook_id},
                {"$setOnInsert": {"received_at": at}},
                upsert=True,
            )
        except DuplicateKeyError:  # a concurrent delivery of it recorded it first
            return False
        return done.upserted_id is not None


@raises_storage_errors
class MongoFinishedRooms(FinishedRooms):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._rooms = db["finished_rooms"]

    async def finish(self, tenant_id: str, room_sid: str, at: datetime) -> None:
        # A concurrent finish of the room inserted it first: its time stands.
        with suppress(DuplicateKeyError):
            await self._rooms.update_one(
                {"tenant_id": tenant_id, "room_sid": room_sid},
                {"$setOnInsert": {"finished_at": at}},
                upsert=True,
            )

    async def finished_at(self, tenant_id: str, room_sid: str) -> datetime | None:
        found = await self._rooms.find_one(
            {"tenant_id": tenant_id, "room_sid": room_sid}, {"_id": 0, "finished_at": 1}
        )
        return None if found is None else found["finished_at"]

    async def which_finished(
        self, tenant_id: str, room_sids: Collection[str]
    ) -> dict[str, datetime]:
        found = self._rooms.find(
            {"tenant_id": tenant_id, "room_sid": {"$in": list(room_sids)}},
            {"_id": 0, "room_sid": 1, "finished_at": 1},
        )
        return {room["room_sid"]: room["finished_at"] async for room in found}


# Track ends numbered in their session's document (max_sequence_no) and not yet stored in the
# events: a track's end is numbered and its seconds counted in one guarded update, its events
# inserted after, and only then counted (event_count). So a reader never finds an end counted
# that is not stored (an export: MongoTenantArchive._as_they_were waits for none in flight).
ENDS_IN_FLIGHT = "ends_in_flight"
# Whose the ends in flight are: an entry per write that has some, pushed by its numbering and
# pulled by its count, {token, track, first, last, ends, since}: the write's own token, its
# track, the numbers it took (first..last, `ends` of them) and when (on its wall clock).
# ENDS_IN_FLIGHT is the sum of their ends, but for ends a version before the entries put in
# flight (no entry: _finish_ends gives them one, first and last None, when it first sees them).
ENDS_WRITES = "ends_writes"
# A write whose entry is this old is dead (its process died, or its connection for good):
# finish_dead_track_ends counts what it stored and takes its entry. Twice an append's
# STALE_AFTER and a settlement turn's LEASE (30 s, event_counting, ledger_turns): after its
# numbering a write makes two more round trips, each given up by the driver after a server
# selection of 30 s. One that outlives it finds its entry taken when it counts: it then counts
# the stay again from what it holds (see MongoTrackLog._count).
ENDS_DEAD_AFTER = timedelta(seconds=60)


@raises_storage_errors
class MongoTrackLog(TrackLog):
    """A stay's tracks live in its session's document (`tracks.<sid>`), so that recording an
    end, numbering its event and adding the track's seconds to the usage are one
    single-document update, guarded on the track as read. The document also keeps when its
    last known track ended (`tracks_until`) and its first began (`tracks_from`), so that rollups
    find the sessions with track time in an hour by index (see rollups.py)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db
        self._sessions = db["sessions"]
        self._events = db["events"]

    async def record(self, tenant_id: str, session_id: str, report: TrackReport) -> bool:
        key = {"tenant_id": tenant_id, "id": session_id}
        track = f"tracks.{track_field(report.track_sid)}"
        for _ in range(ATTEMPTS):
            state = {"ended_at": 1, "status": 1, "charge_state": 1, "charge_revision": 1}
            found = await self._sessions.find_one(key, {"_id": 0, track: 1, **state})
            if found is None:
                return False  # no session, no tracks: nothing kept
            ended_at = found.get("ended_at")
            required = stays_end_required(report)
            if required is not None and ended_at not in (None, required):
                return False  # a stale ender's
            stored = (found.get("tracks") or {}).get(track_field(report.track_sid))
            known = None if stored is None else track_report(report.track_sid, stored)
            counted = bool(stored and stored.get("counted"))
            change = report_track(known, counted, report)
            if not change.changed:
                return False
            # Guarded on the track as read: a concurrent report that changed it first fails the
            # guard, and this one is decided again on what it left.
            from_stay = known is not None and known.end_from_stay
            guard = {
                "ended_at": ended_at,
                f"{track}.published_at": None if known is None else known.published_at,
                f"{track}.unpublished_at": None if known is None else known.unpublished_at,
                f"{track}.end_from_stay": True if from_stay else {"$ne": True},
                f"{track}.counted": True if counted else {"$ne": True},
            }
            update = _update(track, change)
            # Its seconds leave an ended stay to be settled again in this same write, so that a
            # crash after it leaves none charged at its old price; guarded on its charge as read.
            status, charge = SessionStatus(found["status"]), ChargeState(found["charge_state"])
            if change.seconds is not None and settled_again_on_usage(status, charge):
                # (A document from before revisions has none: null matches its absence.)
                guard |= {
                    "charge_state": charge.value,
                    "charge_revision": found.get("charge_revision"),
                }
                update["$set"]["charge_state"] = ChargeState.PENDING.value
                update.setdefault("$inc", {})["charge_revision"] = 1
            token = ObjectId()
            ends = len(change.ends)
            written = await self._sessions.find_one_and_update(
                {**key, **guard},
                _numbering(update, token, report.track_sid, ends) if ends else update,
                {"_id": 0, "max_sequence_no": 1},
                return_document=ReturnDocument.AFTER,
            )
            if written is None:
                continue
            if change.ends:
                # Numbered above and counted once stored (ENDS_IN_FLIGHT): a crash before the
                # insert leaves a gap in the session's events, which its event_gaps show; the
                # track itself is recorded exactly.
                first = written["max_sequence_no"] - ends + 1
                t = change.track
                recorded = track_events(session_id, first, t.meter, t.track_sid, change.ends)
                stored = len(recorded)
                try:
                    await self._events.insert_many(
                        [event_documents.to_document(tenant_id, e) for e in recorded],
                        ordered=False,
                    )
                except BulkWriteError as error:  # a client's event took a number meanwhile
                    stored -= len(duplicates_in(error))
                await self._count(key, token, stored, ends)
            return change.seconds is not None
        raise Contended(f"track {report.track_sid} changed too often to be recorded; retry")

    async def _count(self, key: Document, token: ObjectId, stored: int, ends: int) -> None:
        """Count the `stored` of the write `token`'s `ends` into the session `key`, guarded on
        its entry still there (ENDS_WRITES). A pass took it if the write outlived
        ENDS_DEAD_AFTER, and counted the stay without it (before its insert, or after): the
        stay is then counted again from what it holds (_finish_ends), never added to."""
        done = await self._sessions.update_one(
            {**key, f"{ENDS_WRITES}.token": token},
            {
                "$inc": {"event_count": stored, ENDS_IN_FLIGHT: -ends},
                "$pull": {ENDS_WRITES: {"token": token}},
            },
        )
        if done.matched_count:
            return
        found = await self._sessions.find_one(key, _IN_FLIGHT_FIELDS)
        if found is not None:  # (not erased meanwhile)
            await _finish_ends(self._db, found, None)

    async def tracks_ending_with_stay(self, tenant_id: str, session_id: str) -> list[TrackReport]:
        found = await self._sessions.find_one(
            {"tenant_id": tenant_id, "id": session_id}, {"_id": 0, "tracks": 1}
        )
        reports = [report for report, _ in kept_tracks(found or {})]
        return [
            r
            for r in reports
            if r.published_at is not None and (r.unpublished_at is None or r.end_from_stay)
        ]


def _update(track: str, change: TrackChange) -> Document:
    """The write of what a report changed of a track (at `track`, tracks.<sid>)."""
    t = change.track
    update: Document = {
        "$set": {
            f"{track}.meter": t.meter,
            f"{track}.published_at": t.published_at,
            f"{track}.unpublished_at": t.unpublished_at,
            f"{track}.end_from_stay": t.end_from_stay,
            f"{track}.counted": change.counted,
        }
    }
    increments_: Document = {}
    if change.ends:
        increments_.update({"max_sequence_no": len(change.ends), ENDS_IN_FLIGHT: len(change.ends)})
    if change.seconds is not None:
        increments_.update(increments("usage", {t.meter: change.seconds}))
    if increments_:
        update["$inc"] = increments_
    return update | track_span(t)


def _numbering(update: Document, token: ObjectId, track_sid: str, ends: int) -> list[Document]:
    """`update` (of $set, $inc, $min and $max), as a pipeline that then pushes the entry of the
    write `token` (ENDS_WRITES): its numbers are the last `ends` of max_sequence_no as updated,
    which only the update itself knows."""
    stage: Document = {}
    for operator, fields in update.items():
        for field, value in fields.items():
            stage[field] = _as_expression(operator, f"${field}", value)
    last = "$max_sequence_no"
    entry = {
        "token": token,
        "track": {"$literal": track_sid},
        "first": {"$subtract": [last, ends - 1]},
        "last": last,
        "ends": ends,
        "since": wall_clock(),
    }
    pushed = {"$concatArrays": [{"$ifNull": [f"${ENDS_WRITES}", []]}, [entry]]}
    return [{"$set": stage}, {"$set": {ENDS_WRITES: pushed}}]


def _as_expression(operator: str, current: str, value: object) -> Document:
    """The value an update's `operator` gives the field at `current` ("$<path>"), as an
    expression of a pipeline's $set."""
    if operator == "$set":
        return {"$literal": value}
    if operator == "$inc":  # (a missing field counts from 0, as $inc does)
        return {"$add": [{"$ifNull": [current, 0]}, {"$literal": value}]}
    if operator in ("$min", "$max"):  # (a missing field takes the value, as they do)
        return {operator: [current, {"$literal": value}]}
    raise ValueError(f"{operator} has no pipeline form here")


# What _finish_ends reads of a session: what it counts, and what its guard compares.
_IN_FLIGHT_FIELDS = {
    "_id": 0,
    "tenant_id": 1,
    "id": 1,
    "event_count": 1,
    "deleted_events": 1,
    "counting": 1,
    "refusals": 1,
    ENDS_IN_FLIGHT: 1,
    ENDS_WRITES: 1,
}


async def finish_dead_track_ends(db: AsyncDatabase[Document], tenant_id: str) -> None:
    """Finish what track writes that died left of the tenant's sessions (the reaper's pass runs
    it): the ends of a write whose entry is ENDS_DEAD_AFTER old are counted as stored (those
    never inserted are gaps), and its entry taken. Sessions with ends in flight are few, found
    by their index (indexes.py). Safe to run anywhere at once: each session is counted in one
    update guarded on what the count was made from."""
    dead_before = wall_clock() - ENDS_DEAD_AFTER
    in_flight = {"tenant_id": tenant_id, ENDS_IN_FLIGHT: {"$gt": 0}}
    async for found in db["sessions"].find(in_flight, _IN_FLIGHT_FIELDS):
        await _finish_ends(db, found, dead_before)


async def _finish_ends(
    db: AsyncDatabase[Document], found: Document, dead_before: datetime | None
) -> None:
    """Count into the session `found` (as read) the events it holds, once a write with ends in
    flight is dead (its entry older than `dead_before`); with `dead_before` None (a write
    whose entry a pass took), whatever the writes in flight.

    The count is what is counted of the events stored (a batch under way counts only once
    counted into it: event_counting.counted) and what retention deleted, but for the ends of
    the writes left in flight (the numbers of their entries, stored or deleted: each counts
    its own); they stay in flight, the dead ones' entries go. The update is guarded on every
    field that changes when that does (a batch's count moves event_count, retention and erasure
    push deleted_events before they delete) and on the ends in flight and their entries as read
    (a write numbering more or counting its own, or a concurrent finisher): so a change between
    the reads and the write makes it read again, and nothing is counted twice or lost. After
    ATTEMPTS changes it gives up: the next pass tries again (a late writer's does not)."""
    key = {"tenant_id": found["tenant_id"], "id": found["id"]}
    for _ in range(ATTEMPTS):
        writes: list[Document] = found.get(ENDS_WRITES) or []
        in_flight = found.get(ENDS_IN_FLIGHT) or 0
        unowned = in_flight - sum(w["ends"] for w in writes)
        guard = {
            **key,
            **{
                f: found.get(f)
                for f in ("event_count", "deleted_events", ENDS_IN_FLIGHT, ENDS_WRITES)
            },
        }
        dead: list[Document] = []
        if dead_before is not None:
            if unowned > 0:  # a version before the entries': one write's, aged from now on
                unknown = {"token": ObjectId(), "track": None, "first": None, "last": None}
                entry = {**unknown, "ends": unowned, "since": wall_clock()}
                await db["sessions"].update_one(guard, {"$push": {ENDS_WRITES: entry}})
                return  # a later pass finishes it
            dead = [w for w in writes if w["since"] < dead_before]
            if not dead:
                return  # writes that may still be alive, or none
        live = [w for w in writes if w not in dead]
        numbers = await _counted_numbers(db, found, live)
        finished = await db["sessions"].update_one(
            guard,
            {
                "$set": {
                    "event_count": _counted(numbers, found, live),
                    ENDS_IN_FLIGHT: sum(w["ends"] for w in live) + max(unowned, 0),
                    ENDS_WRITES: live,
                }
            },
        )
        if finished.matched_count:
            return
        again = await db["sessions"].find_one(key, _IN_FLIGHT_FIELDS)
        if again is None:
            return  # erased meanwhile
        found = again


async def _counted_numbers(
    db: AsyncDatabase[Document], session: Document, live: list[Document]
) -> list[int]:
    """The numbers of the session's stored events that are counted into it (as read), but for
    the ends the `live` writes stored (theirs in their numbers, of their track: a client's
    event that took one of their numbers is counted as any)."""
    events = db["events"].find(
        {"tenant_id": session["tenant_id"], "session_id": session["id"]},
        {"_id": 0, "sequence_no": 1, "batch": 1, "category": 1, "data.track_sid": 1},
    )
    return [
        e["sequence_no"]
        async for e in events
        if ("batch" not in e or counted(session, e["batch"], e["sequence_no"]))
        and not any(_written_by(w, e) for w in live)
    ]


def _written_by(write: Document, event: Document) -> bool:
    """Whether the stored `event` is one of the ends of `write` (an entry of ENDS_WRITES)."""
    first, last, n = write["first"], write["last"], event["sequence_no"]
    return (
        first is not None
        and first <= n <= last
        and event.get("category") == "track"
        and (event.get("data") or {}).get("track_sid") == write["track"]
    )


def _counted(numbers: list[int], session: Document, live: list[Document]) -> int:
    """How many events are counted into the session (as read) whose counted events stored have
    these `numbers`: those, and those deleted (Session.deleted_events, remembered before they
    went: some may still be stored), but for the numbers of the `live` writes (their ends,
    each counts its own)."""
    deleted = merged((first, last) for first, last in session.get("deleted_events") or ())
    firsts = [first for first, _ in deleted]

    def gone(number: int) -> bool:
        at = bisect_right(firsts, number) - 1
        return at >= 0 and number <= deleted[at][1]

    theirs: list[tuple[int, int]] = [
        (w["first"], w["last"]) for w in live if w["first"] is not None
    ]
    kept = sum(not gone(n) for n in set(numbers))
    deleted_ = sum(last - first + 1 for first, last in deleted)
    deleted_theirs = sum(
        max(0, min(last, to) - max(first, from_) + 1)
        for first, last in deleted
        for from_, to in theirs
    )
    return kept + deleted_ - deleted_theirs


def track_span(t: TrackReport) -> Document:
    """The updates that keep the session's `tracks_from` and `tracks_until` around the track."""
    span: Document = {}
    if t.published_at is not None:
        span["$min"] = {"tracks_from": t.published_at}
    if t.unpublished_at is not None:
        span["$max"] = {"tracks_until": t.unpublished_at}
    return span


# A track's sid names its field in its stay's `tracks`: the characters MongoDB reads as a path
# ('.') or an operator ('$') are written %2E and %24 there, and '%' itself %25, so that any sid
# a webhook brings is a field of its own (`TR_cam.meter` is not TR_cam's meter).
_FIELD_ESCAPES = {"%": "%25", ".": "%2E", "$": "%24"}


def track_field(track_sid: str) -> str:
    return "".join(_FIELD_ESCAPES.get(c, c) for c in track_sid)


def kept_tracks(session: Document) -> list[tuple[TrackReport, Document]]:
    """The tracks kept in a session's document, by sid, each with what is kept of it."""
    tracks = session.get("tracks") or {}
    kept = [(track_report(unquote(field), known), known) for field, known in tracks.items()]
    return sorted(kept, key=lambda track: track[0].track_sid)


def track_report(track_sid: str, known: Document) -> TrackReport:
    return TrackReport(
        track_sid,
        known["meter"],
        known.get("published_at"),
        known.get("unpublished_at"),
        bool(known.get("end_from_stay")),
    )
