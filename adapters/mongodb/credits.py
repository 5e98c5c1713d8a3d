"""Rates and the credit ledger in MongoDB.

A settlement writes the charge entry first (a unique index allows one per session), then claims
the pending session with a guarded update: of concurrent settlers exactly one claims it, and a
settlement cut short after the entry is finished by the next one (the reaper) without a second
entry. The balance is always the server's sum of the ledger.
"""

import uuid
from contextlib import suppress
from datetime import datetime
from decimal import Decimal

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from adapters.mongodb.documents import Document, meter_field, meter_name
from adapters.mongodb.session_documents import load
from domain.credits import Alert, Balance, EntryKind, LedgerEntry, MeterRate, Rate, Rounding
from domain.errors import NotFound
from domain.session import Charge, ChargeState, Session

NEGATIVE_BALANCE = "negative_balance"


class MongoRateRepository:
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


class MongoCreditLedger:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db
        self._ledger = db["ledger"]
        self._alerts = db["alerts"]
        self._sessions = db["sessions"]

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
        self, tenant_id: str, session_id: str, credits: int, at: datetime
    ) -> Charge | None:
        key = {"tenant_id": tenant_id, "id": session_id}
        session = await self._sessions.find_one(
            key, {"charge_state": 1, "subject_id": 1, "kind": 1}
        )
        if session is None:
            raise NotFound(f"no session {session_id}")
        subject_id = session["subject_id"]
        if session["charge_state"] != ChargeState.PENDING or subject_id is None:
            return None
        if credits:
            charge = LedgerEntry(
                str(uuid.uuid4()),
                tenant_id,
                subject_id,
                -credits,
                EntryKind.CHARGE,
                at,
                f"{session['kind']} session",
                session_id,
            )
            # A duplicate: an earlier settlement of this session wrote it, then stopped or lost.
            with suppress(DuplicateKeyError):
                await self._ledger.insert_one(entry_to_document(charge))
        balance = (await self.balance(tenant_id, subject_id)).balance
        warning = NEGATIVE_BALANCE if balance < 0 else None
        if warning:
            await self._alert(tenant_id, subject_id, session_id, credits, balance, at)
        claimed = await self._sessions.find_one_and_update(
            {**key, "charge_state": ChargeState.PENDING.value},
            {
                "$set": {
                    "charge_state": ChargeState.CHARGED.value,
                    "charge": {"credits": credits, "balance_after": balance, "warning": warning},
                }
            },
            {"_id": 1},
            return_document=ReturnDocument.AFTER,
        )
        return None if claimed is None else Charge(credits, balance, warning)

    async def settled(self, tenant_id: str, session_id: str) -> Session:
        found = await self._sessions.find_one({"tenant_id": tenant_id, "id": session_id})
        if found is None:
            raise NotFound(f"no session {session_id}")
        return await load(self._db, found)

    async def balance(self, tenant_id: str, subject_id: str) -> Balance:
        pipeline: list[Document] = [
            {"$match": {"tenant_id": tenant_id, "subject_id": subject_id}},
            {
                "$group": {
                    "_id": None,
                    "granted": {"$sum": {"$cond": [{"$gt": ["$amount", 0]}, "$amount", 0]}},
                    "consumed": {
                        "$sum": {
                            "$cond": [{"$lt": ["$amount", 0]}, {"$multiply": ["$amount", -1]}, 0]
                        }
                    },
                }
            },
        ]
        # A real mongod groups no entries into no document at all.
        sums = await (await self._ledger.aggregate(pipeline)).to_list(None)
        if not sums:
            return Balance(subject_id, 0, 0)
        return Balance(subject_id, int(sums[0]["granted"]), int(sums[0]["consumed"]))

    async def entries(
        self, tenant_id: str, subject_id: str, limit: int, after: str | None = None
    ) -> list[LedgerEntry]:
        query: Document = {"tenant_id": tenant_id, "subject_id": subject_id}
        if after is not None:
            anchor = await self._ledger.find_one({**query, "id": after}, {"created_at": 1})
            if anchor is not None:
                query["$or"] = [
                    {"created_at": {"$gt": anchor["created_at"]}},
                    {"created_at": anchor["created_at"], "id": {"$gt": after}},
                ]
        cursor = self._ledger.find(query, sort=[("created_at", 1), ("id", 1)], limit=limit)
        return [entry_from_document(d) async for d in cursor]

    async def alerts(self, tenant_id: str, limit: int) -> list[Alert]:
        cursor = self._alerts.find(
            {"tenant_id": tenant_id}, sort=[("created_at", -1), ("id", -1)], limit=limit
        )
        return [alert_from_document(d) async for d in cursor]

    async def _alert(
        self,
        tenant_id: str,
        subject_id: str,
        session_id: str,
        credits: int,
        balance: int,
        at: datetime,
    ) -> None:
        """One alert per session, however often its settlement is retried."""
        with suppress(DuplicateKeyError):  # a concurrent settler's upsert inserted it
            await self._alerts.update_one(
                {"tenant_id": tenant_id, "session_id": session_id, "kind": NEGATIVE_BALANCE},
                {
                    "$setOnInsert": {
                        "id": str(uuid.uuid4()),
                        "subject_id": subject_id,
                        "detail": f"charging {credits} credits left a balance of {balance}",
                        "created_at": at,
                    }
                },
                upsert=True,
            )


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
