"""A tenant's whole state out of and into MongoDB: streamed out collection by collection through
cursors, and in by inserts that the unique indexes turn into no-ops for what is already there."""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, fields, replace
from datetime import date
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from adapters.mongodb import event_documents, session_documents
from adapters.mongodb.credits import (
    alert_from_document,
    entry_from_document,
    entry_to_document,
    rate_from_document,
    rate_to_document,
)
from adapters.mongodb.documents import Document
from adapters.mongodb.erasure import ERASURES_BEGUN
from adapters.mongodb.errors import raises_storage_errors
from adapters.mongodb.event_counting import counted
from adapters.mongodb.funnel_days import day_from_document, day_to_document
from adapters.mongodb.funnels import funnel_from_document, funnel_to_document
from adapters.mongodb.livekit import (
    ENDS_IN_FLIGHT,
    account_from_document,
    kept_tracks,
    track_field,
    track_span,
)
from adapters.mongodb.plans import (
    plan_from_document,
    plan_to_document,
    subscription_from_document,
    subscription_set_from_document,
    subscription_set_to_document,
    subscription_to_document,
)
from adapters.mongodb.rollups import rollup_from_document, rollup_to_document
from adapters.mongodb.telemetry_documents import (
    error_from_document,
    error_to_document,
    metric_from_document,
    metric_to_document,
    sale_from_document,
    sale_to_document,
)
from adapters.mongodb.tenants import (
    api_key_from_document,
    api_key_to_document,
    tenant_from_document,
    tenant_to_document,
)
from application.transfer.ports import (
    ArchivedErasure,
    ArchivedFinishedRoom,
    ArchivedFunnelDay,
    ArchivedRefusals,
    ArchivedTrack,
    ArchivedWebhook,
    Record,
    TenantArchive,
)
from domain.credits import Alert, LedgerEntry, Rate
from domain.error_reports import ErrorReport
from domain.errors import Conflict
from domain.events import Event
from domain.funnels import Funnel
from domain.livekit import LiveKitAccount
from domain.performance import Metric
from domain.plans import Plan, Registration, Subscription, SubscriptionSet
from domain.refusals import Refusal, RefusedStart
from domain.rollups import Rollup
from domain.sales import Sale
from domain.session import Session
from domain.snapshots import Snapshot
from domain.tenants import ApiKey, Tenant


def _registration(document: Document) -> Registration:
    return Registration(
        document["subject_id"],
        document["resource_id"],
        document["kind"],
        document["registered_at"],
    )


def _refusals_document(refusals: ArchivedRefusals, tenant_id: str) -> Document:
    refused = refusals.refused
    return {
        "tenant_id": tenant_id,
        "day": refused.day.isoformat(),  # as MongoRefusedStarts keeps it
        "subject_id": refused.subject_id,
        "kind": refused.kind,
        "reason": refused.reason.value,
        "count": refusals.count,
    }


def _refusals(document: Document) -> ArchivedRefusals:
    refused = RefusedStart(
        document["subject_id"],
        document["kind"],
        Refusal(document["reason"]),
        date.fromisoformat(document["day"]),
    )
    return ArchivedRefusals(refused, document["count"])


# Per record class, in the order an import applies them: its collection, the document of a
# record, the record of a document, and the keys that order the export.
CollectionOf = tuple[str, Callable[[Any, str], Document], Callable[[Document], Any], list[str]]
COLLECTIONS: dict[type, CollectionOf] = {
    ApiKey: ("api_keys", lambda r, _: api_key_to_document(r), api_key_from_document, ["id"]),
    Rate: ("rates", lambda r, t: rate_to_document(t, r), rate_from_document, ["kind"]),
    Plan: ("plans", lambda r, t: plan_to_document(t, r), plan_from_document, ["id"]),
    Subscription: (
        "subscriptions",
        lambda r, t: subscription_to_document(t, r),
        subscription_from_document,
        ["subject_id"],
    ),
    SubscriptionSet: (
        "subscription_history",
        lambda r, t: subscription_set_to_document(t, r),
        subscription_set_from_document,
        ["subject_id", "number"],
    ),
    Registration: (
        "subject_resources",
        lambda r, t: {"tenant_id": t, **asdict(r)},
        _registration,
        ["subject_id", "resource_id"],
    ),
    Funnel: (
        "funnels",
        lambda r, t: funnel_to_document(t, r),
        funnel_from_document,
        ["name"],
    ),
    ArchivedErasure: (
        "erasures_under_way",
        lambda r, t: {"tenant_id": t, **asdict(r)},
        lambda d: ArchivedErasure(d["subject_id"], d["pseudonym"], d["started_at"]),
        ["subject_id"],
    ),
    Session: (
        "sessions",
        lambda r, _: session_documents.to_document(r),
        session_documents.from_document,
        ["id"],
    ),
    Event: (
        "events",
        lambda r, t: event_documents.to_document(t, r),
        event_documents.from_document,
        ["session_id", "sequence_no"],
    ),
    # Before the LiveKit keys (sqlalchemy.archive.AFTER_SESSIONS), after the sessions' tracks.
    ArchivedFinishedRoom: (
        "finished_rooms",
        lambda r, t: {"tenant_id": t, **asdict(r)},
        lambda d: ArchivedFinishedRoom(d["room_sid"], d["finished_at"]),
        ["room_sid"],
    ),
    ArchivedWebhook: (
        "webhooks",
        lambda r, t: {"tenant_id": t, **asdict(r)},
        lambda d: ArchivedWebhook(d["id"], d["received_at"]),
        ["id"],
    ),
    LedgerEntry: (
        "ledger",
        lambda r, _: entry_to_document(r),
        entry_from_document,
        ["created_at", "id"],
    ),
    Alert: ("alerts", lambda r, _: asdict(r), alert_from_document, ["id"]),
    LiveKitAccount: (
        "livekit_accounts",
        lambda r, _: asdict(r),
        account_from_document,
        ["api_key"],
    ),
    Snapshot: (
        "snapshots",
        lambda r, t: {"tenant_id": t, **asdict(r)},
        lambda d: Snapshot(**{f.name: d[f.name] for f in fields(Snapshot)}),
        ["source", "at"],
    ),
    ErrorReport: ("errors", lambda r, t: error_to_document(t, r), error_from_document, ["id"]),
    Metric: (
        "performance_metrics",
        lambda r, t: metric_to_document(t, r),
        metric_from_document,
        ["id"],
    ),
    Sale: ("sales", lambda r, t: sale_to_document(t, r), sale_from_document, ["id"]),
    ArchivedRefusals: (
        "refused_starts",
        _refusals_document,
        _refusals,
        ["day", "subject_id", "kind", "reason"],
    ),
    Rollup: (
        "rollups",
        lambda r, t: rollup_to_document(t, r),
        rollup_from_document,
        ["period", "start"],
    ),
    ArchivedFunnelDay: (
        "funnel_days",
        lambda r, t: day_to_document(t, r.funnel, r.day),
        lambda d: ArchivedFunnelDay(d["funnel"], day_from_document(d)),
        ["funnel", "day_start"],
    ),
}


# Sessions read at once, and their events held at once (unless one session has more).
SESSIONS_AT_ONCE = 100
EVENTS_AT_ONCE = 10_000
READS = 20  # of a session that keeps changing, before the export gives up
# Times the reads before, while a track's ends are in flight: 1.7 s in all before the last.
REREAD_AFTER_SECONDS = 0.01
# What a session's document says of its events (a heartbeat's last_seen_at is not read again).
EVENT_FIELDS = (
    "usage",
    "event_count",
    "max_sequence_no",
    "deleted_events",
    "counting",
    "refusals",
    "tracks",
    ENDS_IN_FLIGHT,
)


def _with_gaps(document: Document, events: list[Event]) -> Session:
    """The session, its gaps found among the events read with it (not read again)."""
    session = session_documents.from_document(document)
    if session_documents.has_gaps(session):
        session_documents.with_gaps(session, [e.sequence_no for e in events])
    return session


def _same_events(document: Document, before: Document) -> bool:
    return all(document.get(f) == before.get(f) for f in EVENT_FIELDS)


@raises_storage_errors
class MongoTenantArchive(TenantArchive):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def export(self, tenant_id: str) -> AsyncIterator[Record]:
        found = await self._db["tenants"].find_one({"id": tenant_id})
        assert found is not None, f"no tenant {tenant_id}"
        tenant = tenant_from_document(found)
        yield tenant
        for record_class, (collection, _, from_document, order) in COLLECTIONS.items():
            if record_class is Event:
                continue  # read with their sessions
            if record_class is Session:
                async for record in self._sessions_with_events(tenant_id):
                    yield record
                continue
            cursor = self._db[collection].find(
                {"tenant_id": tenant_id}, sort=[(key, 1) for key in order]
            )
            async for document in cursor:
                if record_class is ArchivedFunnelDay and "dimensions" not in document:
                    # Stored before its dimensions were kept: a dimension the tenant declares
                    # that none of its rows has splits it too (the rows are "without" it).
                    archived = from_document(document)
                    keys = sorted({*archived.day.dimensions, *tenant.settings.dimensions})
                    yield replace(archived, day=replace(archived.day, dimensions=tuple(keys)))
                else:
                    yield from_document(document)
        # An erasure begun meanwhile changed some of the subject's records before they were
        # read and some after, and the file would not carry it (it reads erasures under way
        # before the sessions): a file with no end line, which no import takes.
        again = await self._db["tenants"].find_one({"id": tenant_id}, {ERASURES_BEGUN: 1})
        if (again or {}).get(ERASURES_BEGUN) != found.get(ERASURES_BEGUN):
            raise Conflict("an erasure began while the tenant was exported: export again")

    async def _sessions_with_events(self, tenant_id: str) -> AsyncIterator[Record]:
        """The sessions by id, a few at a time, each followed by its events and then its
        LiveKit tracks (before the LiveKit keys: sqlalchemy.archive.AFTER_SESSIONS)."""
        after = ""
        while True:
            page = (
                await self._db["sessions"]
                .find(
                    {"tenant_id": tenant_id, "id": {"$gt": after}},
                    sort=[("id", 1)],
                    limit=SESSIONS_AT_ONCE,
                )
                .to_list()
            )
            if not page:
                return
            taken: list[Document] = []
            events = 0
            for document in page:  # at least one, however many events it has
                if taken and events + document["event_count"] > EVENTS_AT_ONCE:
                    break
                taken.append(document)
                events += document["event_count"]
            after = taken[-1]["id"]
            async for record in self._as_they_were(tenant_id, taken):
                yield record

    async def _as_they_were(
        self, tenant_id: str, documents: list[Document]
    ) -> AsyncIterator[Record]:
        """These sessions, each with its events and tracks as of one moment, though without a
        transaction: a session's events (and the numbers of its gaps) are read between two
        reads of the session that find the same events counted in it. Whatever changes the
        events a session holds changes its document first (a batch is counted into it before
        its events lose their marks; retention and erasure record the numbers they delete
        before deleting), or counts them once they are stored (a track's ends, in flight
        meanwhile), so its usage is the sum of the events exported with it and its gaps are
        those it had. A session changed in between, or with track ends in flight, is read again
        a little later (ends still in flight at the last read are those of a write that died:
        a gap, which the session's gaps show)."""
        read = {document["id"]: document for document in documents}
        as_they_were: dict[str, tuple[Session, list[Event], Document]] = {}
        for attempt in range(READS):
            events = await self._events_of(tenant_id, read)
            loaded = {i: _with_gaps(d, events.get(i, [])) for i, d in read.items()}
            again = (
                await self._db["sessions"]
                .find({"tenant_id": tenant_id, "id": {"$in": list(read)}})
                .to_list()
            )
            in_flight = set()
            for document in again:
                if document.get(ENDS_IN_FLIGHT) and attempt < READS - 1:
                    in_flight.add(document["id"])
                elif _same_events(document, read[document["id"]]):
                    session_id = document["id"]
                    as_they_were[session_id] = (
                        loaded[session_id],
                        events.get(session_id, []),
                        document,
                    )
            # A session deleted meanwhile is not exported.
            read = {d["id"]: d for d in again if d["id"] not in as_they_were}
            if not read:
                break
            if in_flight:  # a changed session is read again at once: the sooner, the likelier
                await asyncio.sleep(REREAD_AFTER_SECONDS * attempt)
        else:
            raise Conflict(
                f"sessions {sorted(read)} changed at each of {READS} reads: export again"
            )
        ordered = [as_they_were[session_id] for session_id in sorted(as_they_were)]
        for session, _, _ in ordered:
            yield session
        for _, events_of_session, _ in ordered:
            for event in events_of_session:
                yield event
        for _, _, document in ordered:
            for report, known in kept_tracks(document):
                yield ArchivedTrack(document["id"], report, bool(known.get("counted")))

    async def _events_of(
        self, tenant_id: str, sessions: dict[str, Document]
    ) -> dict[str, list[Event]]:
        """The events of these sessions (as read) by session, in order: those of a count under
        way (event_counting) only if counted into it."""
        events: dict[str, list[Event]] = {}
        cursor = self._db["events"].find(
            {"tenant_id": tenant_id, "session_id": {"$in": list(sessions)}},
            sort=[("session_id", 1), ("sequence_no", 1)],
        )
        async for document in cursor:
            session = sessions[document["session_id"]]
            if "batch" in document and not counted(
                session, document["batch"], document["sequence_no"]
            ):
                continue
            events.setdefault(document["session_id"], []).append(
                event_documents.from_document(document)
            )
        return events

    async def restore(self, tenant_id: str, records: Sequence[Record]) -> int:
        new = 0
        for record in records:
            if isinstance(record, ArchivedTrack):
                new += await self._restore_track(tenant_id, record)
                continue
            if isinstance(record, Tenant):
                await self._check_name(record)
                collection, document = "tenants", tenant_to_document(record)
            else:
                collection, to_document, _, _ = COLLECTIONS[type(record)]
                document = to_document(record, tenant_id)
            try:
                await self._db[collection].insert_one(document)
                new += 1
            except DuplicateKeyError:
                pass  # there already: not new
            if isinstance(record, SubscriptionSet):
                await self._count_puts(tenant_id, record)
        return new

    async def _restore_track(self, tenant_id: str, archived: ArchivedTrack) -> bool:
        """Into its session's document, unless the session is not there or has the track."""
        t, field = archived.report, f"tracks.{track_field(archived.report.track_sid)}"
        known = {
            "meter": t.meter,
            "published_at": t.published_at,
            "unpublished_at": t.unpublished_at,
            "end_from_stay": t.end_from_stay,
            "counted": archived.counted,
        }
        stored = await self._db["sessions"].update_one(
            {"tenant_id": tenant_id, "id": archived.session_id, field: {"$exists": False}},
            {"$set": {field: known}, **track_span(t)},
        )
        return stored.modified_count == 1

    async def _count_puts(self, tenant_id: str, entry: SubscriptionSet) -> None:
        """The subject's next put is numbered after every restored entry (the subscription
        counts its puts: MongoSubscriptionRepository.put)."""
        of_subject = {"tenant_id": tenant_id, "subject_id": entry.subscription.subject_id}
        await self._db["subscriptions"].update_one(of_subject, {"$max": {"puts": entry.number}})

    async def _check_name(self, tenant: Tenant) -> None:
        holder = await self._db["tenants"].find_one({"name": tenant.name}, {"id": 1})
        if holder is not None and holder["id"] != tenant.id:
            raise Conflict(f"a tenant named {tenant.name} exists")
