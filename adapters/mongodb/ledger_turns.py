"""Settlements of one subject take turns on MongoDB (CreditLedger.settle), which has no
multi-document transaction here to make a balance read and the entry it decides one step.

A settlement holds its subject's turn from before it reads the balance until its entry is
written: a document per (tenant, subject) in `ledger_turns`, inserted by the holder (the unique
index refuses a second) and deleted when it is done, so that the collection is empty but for
settlements and erasures under way. An erasure holds its subject's turn and its pseudonym's
from before it gives out the pseudonym until the ledger has moved (Erasure.with_ledgers_held).
A holder that dies leaves its document, which the next holder takes over once its lease (a
settlement's LEASE; an erasure's ERASURE_LEASE) has run out. (One that outlived its lease could decide from a balance that
another changes meanwhile: its balance_after and alert would be of the wrong order; the ledger,
summed, stays exact.)"""

import uuid
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from adapters.ledger_holds import renewed
from adapters.mongodb.documents import Document, duplicates_in
from adapters.polling import polled

LEASE = timedelta(seconds=30)


class LedgerTurns:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._turns = db["ledger_turns"]

    @asynccontextmanager
    async def held(
        self,
        tenant_id: str,
        subjects: Collection[str],
        wait_seconds: float = 0,
        lease: timedelta = LEASE,
        renew: bool = False,
    ) -> AsyncIterator[set[str]]:
        """Hold the turns of the subjects that can be held within `wait_seconds` (0: those free
        now), for `lease` at most, and yield them; they are given back on leaving (with `renew`,
        their lease is renewed meanwhile: an erasure's, which may work long). A caller that
        waits takes its subjects in order and stops at the first another holds, so it waits
        holding only subjects before it: two erasures of one subject want the same two turns
        (its own and its pseudonym's), and none waits on another in a circle. One that does
        not wait (a batch) takes all those free."""
        holder = str(uuid.uuid4())
        wanted = set(subjects)
        held: set[str] = set()

        async def take_the_rest() -> bool:
            held.update(
                await self._take(tenant_id, wanted - held, holder, lease, in_order=wait_seconds > 0)
            )
            return held == wanted

        async def keep() -> None:
            until = datetime.now(UTC) + lease
            await self._turns.update_many(
                {"tenant_id": tenant_id, "holder": holder}, {"$set": {"held_until": until}}
            )

        taken = False
        try:
            await polled(take_the_rest, wait_seconds)
            taken = True
            if renew:
                async with renewed(keep, lease):
                    yield held
            else:
                yield held
        finally:
            # By holder, and after a take that raised too: its write may have been made without
            # its reply (a timeout, a dropped connection), and a turn it took unknowingly would
            # stay held until its lease ran out, each settlement of the subject waiting meanwhile.
            if held or not taken:
                await self._turns.delete_many({"tenant_id": tenant_id, "holder": holder})

    async def _take(
        self, tenant_id: str, subjects: set[str], holder: str, lease: timedelta, in_order: bool
    ) -> set[str]:
        """The subjects whose turn this call took, in one write: a turn held by another, and
        not expired, matches no document, and its upsert collides with the unique index.
        `in_order`: in subject order, up to the first held by another."""
        if not subjects:
            return set()
        now = datetime.now(UTC)
        ordered = sorted(subjects)
        takes = [
            UpdateOne(
                {
                    "tenant_id": tenant_id,
                    "subject_id": subject,
                    "held_until": {"$lte": now},
                },
                {"$set": {"holder": holder, "held_until": now + lease}},
                upsert=True,
            )
            for subject in ordered
        ]
        try:
            await self._turns.bulk_write(takes, ordered=in_order)
        except BulkWriteError as error:
            refused = duplicates_in(error)
            if in_order:  # the writes after the first refused were not made
                return set(ordered[: min(refused)])
            return {s for n, s in enumerate(ordered) if n not in refused}
        return subjects
