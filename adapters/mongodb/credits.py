"""Rates and the credit ledger in MongoDB.

A settlement claims the pending revision of a session's charge with one guarded update that also
notes on the session what it owes the ledger (`due`): of concurrent settlers exactly one claims
it, and a settlement cut short after the claim is finished by the next settlement of the session
or by the reaper (pending_charges). A unique index allows one entry per (session, revision), so
finishing twice writes nothing twice. The balance is always the server's sum of the ledger.
"""

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from adapters.ledger_holds import SETTLEMENT_WAIT_SECONDS
from adapters.mongodb.documents import Document, duplicates_in, meter_field, meter_name, past
from adapters.mongodb.errors import described, raises_storage_errors
from adapters.mongodb.ledger_turns import LedgerTurns
from adapters.mongodb.session_documents import from_document, load, to_document
from application.credits.ports import CreditLedger, LedgerHeld, RateRepository
from application.pagination import Position
from application.storage import SettlementCutShort
from domain.charging import Priced, settle, settle_batch, subjects_of
from domain.credits import Alert, Balance, EntryKind, LedgerEntry, MeterRate, Rate, Rounding
from domain.errors import NotFound
from domain.session import Charge, ChargeState, Session

# What settling a session's charge changes in its document (Session.settle).
SETTLED_FIELDS = ("charge_state", "charge")


@raises_storage_errors
class MongoRateRepository(RateRepository):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._rates = db["rates"]

    async def put(self, tenant_id: str, rate: Rate) -> None:
        await self._rates.replace_one(
            {"tenant_id": tenant_id, "kind": rate.kind},
            rate_to_document(tenant_id, rate),
            upsert=True,
        )

    async def all(self, tenant_id: str) -> list[Rate]:
        cursor = self._rates.find({"tenant_id": tenant_id}, sort=[("kind", 1)])
        return [rate_from_document(d) async for d in cursor]


@raises_storage_errors
class MongoCreditLedger(CreditLedger):
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db
        self._ledger = db["ledger"]
        self._alerts = db["alerts"]
        self._sessions = db["sessions"]
        self._turns = LedgerTurns(db)

    async def grant(self, entry: LedgerEntry) -> tuple[LedgerEntry, bool]:
        try:
            await self._ledger.insert_one(entry_to_document(entry))
        except DuplicateKeyError:
            stored = await self._ledger.find_one(
                {"tenant_id": entry.tenant_id, "idempotency_key": entry.idempotency_key}
            )
            assert stored is not None  # the key is taken, and entries are never deleted
            return entry_from_document(stored), False
        return entry, True

    async def settle(
        self, tenant_id: str, session_id: str, revision: int, credits: int, at: datetime
    ) -> Charge | None:
        key = {"tenant_id": tenant_id, "id": session_id}
        found = await self._sessions.find_one(key)
        if found is None:
            raise NotFound(f"no session {session_id}")
        if found.get("due"):  # a settlement cut short: its entry goes in before any other
            await finish_due(self._db, found)
        session = from_document(found)
        if not session.awaits_settlement(revision):
            return None
        assert session.subject_id is not None
        subject = {session.subject_id}
        async with self._turns.held(tenant_id, subject, SETTLEMENT_WAIT_SECONDS) as held:
            if held != subject:  # an erasure holds it, or its other settlements took long
                raise LedgerHeld(session.id)
            return await self._settle(session, revision, credits, at)

    async def _settle(
        self, session: Session, revision: int, credits: int, at: datetime
    ) -> Charge | None:
        """`settle`, holding the subject's turn."""
        tenant_id, key = session.tenant_id, {"tenant_id": session.tenant_id, "id": session.id}
        assert session.subject_id is not None
        balance = (await self.balance(tenant_id, session.subject_id)).balance
        settled = settle(session, credits, balance)
        entry = settled.ledger_entry(session, at)
        alert = settled.alert_record(session, at)
        due: Document = {
            "revision": revision,
            "entry": None if entry is None else entry_to_document(entry),
            "alert": None if alert is None else asdict(alert),
        }
        session.settle(settled.charge)
        document = to_document(session)
        # The claim records what it owes the ledger on the session itself, in the same write:
        # whoever finds it there (this call, or the next settlement after a crash) writes it.
        claimed = await self._sessions.find_one_and_update(
            {
                **key,
                "charge_state": ChargeState.PENDING.value,
                "charge_revision": revision,
                "subject_id": session.subject_id,  # not erased since: see Priced.claimable
                "due": None,
            },
            {"$set": {**{f: document[f] for f in SETTLED_FIELDS}, "due": due}},
            return_document=ReturnDocument.AFTER,
        )
        if claimed is None:
            return None
        async with _cut_short({session.id: settled.charge}):
            await finish_due(self._db, claimed)
        return settled.charge

    async def settle_many(
        self, tenant_id: str, priced: Sequence[Priced], at: datetime
    ) -> dict[str, Charge]:
        """`settle`, a batch at a time: the sessions' charge states read at once (a settlement
        cut short on one is finished first), their subjects' balances summed in one
        aggregation, domain.charging.settle_batch decides, then one unordered bulk write of
        guarded claims, each noting on its session what it owes the ledger and this call's
        claim id. The sessions found carrying that id were claimed here: their entries and
        alerts are inserted (two unordered inserts; the unique indexes refuse a second copy),
        then their notes cleared. A crash anywhere leaves each claim's note for the next
        settlement of the session, or pending_charges, to finish."""
        if not priced:
            return {}
        # The subjects' turns free now; the sessions of the others are left out (their callers
        # settle them one by one, waiting for their turn).
        async with self._turns.held(tenant_id, subjects_of(priced)) as held:
            mine = [
                p for p in priced if p.session.subject_id is None or p.session.subject_id in held
            ]
            return await self._settle_many(tenant_id, mine, at)

    async def _settle_many(
        self, tenant_id: str, priced: Sequence[Priced], at: datetime
    ) -> dict[str, Charge]:
        """`settle_many`, holding the turns of the sessions' subjects."""
        if not priced:
            return {}
        ids = sorted({p.session_id for p in priced})
        stored: dict[str, tuple[ChargeState, int, str | None]] = {}
        cursor = self._sessions.find(
            {"tenant_id": tenant_id, "id": {"$in": ids}},
            {
                "id": 1,
                "charge_state": 1,
                "charge_revision": 1,
                "subject_id": 1,
                "due": 1,
                "tenant_id": 1,
            },
        )
        async for document in cursor:
            if document.get("due"):  # a settlement cut short: its entry goes in before any other
                await finish_due(self._db, document)
            state = ChargeState(document["charge_state"])
            revision = document.get("charge_revision", 0)
            stored[document["id"]] = (state, revision, document.get("subject_id"))
        claimed = [
            p for p in priced if p.session_id in stored and p.claimable(*stored[p.session_id])
        ]
        decided = settle_batch(claimed, await self._balances(tenant_id, subjects_of(claimed)))
        if not decided:
            return {}
        claim = str(uuid.uuid4())
        claims = []
        for d in decided:
            entry, alert = d.ledger_entry(at), d.alert_record(at)
            due: Document = {
                "revision": d.session.charge_revision,
                "entry": None if entry is None else entry_to_document(entry),
                "alert": None if alert is None else asdict(alert),
                "claim": claim,
            }
            document = to_document(d.settled_session())
            claims.append(
                UpdateOne(
                    {
                        "tenant_id": tenant_id,
                        "id": d.session.id,
                        "charge_state": ChargeState.PENDING.value,
                        "charge_revision": d.session.charge_revision,
                        "subject_id": d.session.subject_id,
                        "due": None,
                    },
                    {
                        "$set": {
                            **{f: document[f] for f in SETTLED_FIELDS},
                            "due": due,
                            "claimed_by": claim,
                        }
                    },
                )
            )
        await self._sessions.bulk_write(claims, ordered=False)
        # Claimed here: carrying this call's claim id. A concurrent settlement of one of them may
        # have finished its note already (its entry is in): only the notes still there are
        # written, but the session is settled here all the same, so its caller knows it charged
        # it (and tells the metrics so).
        # (Should this read fail, which claims were made is unknown: each decided one is told,
        # so as not to leave a first charge untold; one whose claim a correction took then is
        # told twice.)
        async with _cut_short({d.session.id: d.charge for d in decided}):
            claimed_here = {
                document["id"]: document.get("due")
                async for document in self._sessions.find(
                    {
                        "tenant_id": tenant_id,
                        "id": {"$in": [d.session.id for d in decided]},
                        "claimed_by": claim,
                    },
                    {"due": 1, "id": 1},
                )
            }
        notes = [due for due in claimed_here.values() if due and due.get("claim") == claim]
        charges = {d.session.id: d.charge for d in decided if d.session.id in claimed_here}
        async with _cut_short(charges):
            await _insert_once(self._ledger, [n["entry"] for n in notes if n["entry"] is not None])
            await _insert_once(self._alerts, [n["alert"] for n in notes if n["alert"] is not None])
            await self._sessions.update_many(
                {"tenant_id": tenant_id, "id": {"$in": list(claimed_here)}, "due.claim": claim},
                {"$set": {"due": None}},
            )
        return charges

    async def _balances(self, tenant_id: str, subjects: set[str]) -> dict[str, int]:
        """The subjects' balances (sums of their ledgers), in one aggregation."""
        if not subjects:
            return {}
        pipeline: list[Document] = [
            {"$match": {"tenant_id": tenant_id, "subject_id": {"$in": sorted(subjects)}}},
            {"$group": {"_id": "$subject_id", "balance": {"$sum": "$amount"}}},
        ]
        sums = await (await self._ledger.aggregate(pipeline)).to_list(None)
        return {s["_id"]: int(s["balance"]) for s in sums}

    async def settled(self, tenant_id: str, session_id: str) -> Session:
        found = await self._sessions.find_one({"tenant_id": tenant_id, "id": session_id})
        if found is None:
            raise NotFound(f"no session {session_id}")
        return await load(self._db, found)

    async def balance(self, tenant_id: str, subject_id: str) -> Balance:
        is_grant = {"$eq": ["$kind", EntryKind.GRANT.value]}
        pipeline: list[Document] = [
            {"$match": {"tenant_id": tenant_id, "subject_id": subject_id}},
            {
                "$group": {
                    "_id": None,
                    "granted": {"$sum": {"$cond": [is_grant, "$amount", 0]}},
                    # charges net of their adjustments
                    "consumed": {"$sum": {"$cond": [is_grant, 0, {"$multiply": ["$amount", -1]}]}},
                }
            },
        ]
        # A real mongod groups no entries into no document at all.
        sums = await (await self._ledger.aggregate(pipeline)).to_list(None)
        if not sums:
            return Balance(subject_id, 0, 0)
        return Balance(subject_id, int(sums[0]["granted"]), int(sums[0]["consumed"]))

    async def entries(
        self, tenant_id: str, subject_id: str, limit: int, after: Position | None = None
    ) -> list[LedgerEntry]:
        query: Document = {"tenant_id": tenant_id, "subject_id": subject_id}
        if after is not None:
            query |= past("created_at", "id", (after.at, after.id))
        cursor = self._ledger.find(query, sort=[("created_at", 1), ("id", 1)], limit=limit)
        return [entry_from_document(d) async for d in cursor]

    async def alerts(
        self, tenant_id: str, limit: int, before: Position | None = None
    ) -> list[Alert]:
        query: Document = {"tenant_id": tenant_id}
        if before is not None:
            query |= past("created_at", "id", (before.at, before.id), descending=True)
        cursor = self._alerts.find(query, sort=[("created_at", -1), ("id", -1)], limit=limit)
        return [alert_from_document(d) async for d in cursor]


@asynccontextmanager
async def _cut_short(charges: dict[str, Charge]) -> AsyncIterator[None]:
    """What follows claims (reading them back, writing what they owe the ledger): a failure
    there is SettlementCutShort, so that the caller tells the charges it claimed (whoever
    finishes the notes later tells nothing)."""
    try:
        yield
    except Exception as error:  # the claims stand whatever failed: a driver's error or another
        raise SettlementCutShort(described(error), charges) from error


async def finish_due(db: AsyncDatabase[Document], session: Document) -> None:
    """Write the ledger entry and alert a settlement claimed on `session`, once (the unique
    indexes refuse a second copy), then clear the claim's note of them."""
    due = session["due"]
    if due["entry"] is not None:
        with suppress(DuplicateKeyError):
            await db["ledger"].insert_one(dict(due["entry"]))
    if due["alert"] is not None:
        with suppress(DuplicateKeyError):
            await db["alerts"].insert_one(dict(due["alert"]))
    await db["sessions"].update_one(
        {"tenant_id": session["tenant_id"], "id": session["id"], "due.revision": due["revision"]},
        {"$set": {"due": None}},
    )


async def _insert_once(collection: AsyncCollection[Document], documents: list[Document]) -> None:
    """Insert the documents; those already stored (a unique index refuses them) stay as they are."""
    if not documents:
        return
    try:
        await collection.insert_many([dict(d) for d in documents], ordered=False)
    except BulkWriteError as error:
        duplicates_in(error)  # any other failure is raised again


def entry_to_document(entry: LedgerEntry) -> Document:
    document: Document = {
        "id": entry.id,
        "tenant_id": entry.tenant_id,
        "subject_id": entry.subject_id,
        "amount": entry.amount,
        "kind": entry.kind.value,
        "reason": entry.reason,
        "created_at": entry.created_at,
        "expires_at": entry.expires_at,
    }
    # Absent rather than null: the unique indexes on them are partial ($exists).
    if entry.session_id is not None:
        document["session_id"] = entry.session_id
        document["session_revision"] = entry.session_revision
    if entry.idempotency_key is not None:
        document["idempotency_key"] = entry.idempotency_key
    return document


def entry_from_document(document: Document) -> LedgerEntry:
    return LedgerEntry(
        id=document["id"],
        tenant_id=document["tenant_id"],
        subject_id=document["subject_id"],
        amount=document["amount"],
        kind=EntryKind(document["kind"]),
        created_at=document["created_at"],
        reason=document["reason"],
        session_id=document.get("session_id"),
        idempotency_key=document.get("idempotency_key"),
        expires_at=document["expires_at"],
        session_revision=document.get("session_revision"),
    )


def rate_to_document(tenant_id: str, rate: Rate) -> Document:
    return {
        "tenant_id": tenant_id,
        "kind": rate.kind,
        "credits_per_minute": rate.credits_per_minute,
        "rounding": rate.rounding.value,
        "meter_rates": {
            meter_field(m): {"per": str(r.per), "credits": r.credits}
            for m, r in rate.meter_rates.items()
        },
    }


def rate_from_document(document: Document) -> Rate:
    return Rate(
        document["kind"],
        document["credits_per_minute"],
        Rounding(document["rounding"]),
        {
            meter_name(f): MeterRate(Decimal(r["per"]), r["credits"])
            for f, r in document["meter_rates"].items()
        },
    )


def alert_from_document(document: Document) -> Alert:
    return Alert(
        document["id"],
        document["tenant_id"],
        document["kind"],
        document["subject_id"],
        document.get("session_id"),
        document["detail"],
        document["created_at"],
    )
