"""Gaps found by mutation testing of the MongoDB credit ledger's atomic steps
(adapters.mongodb.credits: CreditLedger.grant, settle, _settle, settle_many, _settle_many,
balance, _balances, settled, finish_due, _insert_once; `make mutants`): each test here failed
with one surviving mutant applied, and holds on every store it runs on. Without multi-document
transactions, a MongoDB settlement claims its sessions with notes of what it owes the ledger, and
whoever finds a note finishes it; the tests that step in at the driver's collection methods (a
settlement or a correction in the middle of a batch), or leave a note behind, or read the notes,
run on MongoDB only."""

import threading
from dataclasses import replace
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from adapters.mongodb.documents import Document
from application.credits.ports import LedgerHeld
from domain.charging import Priced
from domain.credits import EntryKind
from domain.events import Event
from domain.session import Charge, ChargeState, Exit, Session
from domain.tenants import Tenant
from tests.contract.builders import (
    NOW,
    OPEN,
    SHUT,
    a_grant,
    a_session,
    add_tenant,
    at,
    claimed_by_a_settlement_that_died,
    stored_session,
)
from tests.contract.races import Race, wait_for

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)

RATED = frozenset({"counseling"})


async def pending(storage: Any, tenant: Tenant, minutes: float = 3) -> Session:
    """A counseling session of user-1, ended by its client after `minutes`: pending at 0."""
    session = await stored_session(storage, tenant, kind="counseling")
    ended, _ = await storage.sessions.close(
        tenant.id, session.id, Exit(at=at(minutes)), RATED, NOW, SHUT
    )
    assert isinstance(ended, Session) and ended.charge_state is ChargeState.PENDING
    return ended


async def test_a_grant_whose_key_is_taken_answers_the_entry_of_that_key(
    storage: Any, tenant: Tenant
) -> None:
    """A grant whose idempotency key is taken answers the entry stored under that key, not any
    entry of the ledger (xǁMongoCreditLedgerǁgrant__mutmut_4 looked it up with no filter at all,
    and answered the first grant stored)."""
    welcome, _ = await storage.ledger.grant(a_grant(tenant, 100, "welcome"))
    top_up, _ = await storage.ledger.grant(a_grant(tenant, 20, "top-up-1", subject="user-2"))

    again, created = await storage.ledger.grant(a_grant(tenant, 20, "top-up-1", subject="user-2"))

    assert not created
    assert again == top_up != welcome
    assert (await storage.ledger.balance(tenant.id, "user-2")).balance == 20


# PostgreSQL is left out: its wait (5 s, migration 0027's lock_timeout) is not shortened here.
@pytest.mark.parametrize("storage_url", ["memory", "sqlite", "mongodb"], indirect=True)
async def test_a_settlement_that_finds_its_subjects_ledger_held_names_its_session(
    storage: Any, tenant: Tenant, race: Race, short_waits: None
) -> None:
    """An erasure holds the subject's ledger (Erasure.with_ledgers_held) longer than a
    settlement waits: the settlement claims nothing and raises LedgerHeld with the session's id,
    as the port says (xǁMongoCreditLedgerǁsettle__mutmut_30 raised LedgerHeld(None))."""
    session = await pending(storage, tenant)
    holding, settled = threading.Event(), threading.Event()

    async def hold(s: Any) -> None:
        async def until_settled() -> None:
            holding.set()
            await wait_for(settled)

        await s.erasure.with_ledgers_held(tenant.id, {"user-1"}, until_settled)

    async def settle(s: Any) -> tuple[Any, ...]:
        await wait_for(holding)
        try:
            with pytest.raises(LedgerHeld) as held:
                await s.ledger.settle(tenant.id, session.id, 0, 6, at(10))
        finally:
            settled.set()
        return held.value.args  # (an exception returned would count as raised by the racer)

    _, args = await race(hold, settle)

    assert args == (session.id,)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.charge_state, stored.charge) == (ChargeState.PENDING, None)


async def user_1s_charges(storage: Any, tenant: Tenant) -> dict[str, list[int]]:
    """user-1's charges by session."""
    found: dict[str, list[int]] = {}
    for e in await storage.ledger.entries(tenant.id, "user-1", limit=50):
        assert e.session_id is not None
        found.setdefault(e.session_id, []).append(e.amount)
    return found


@on_mongodb
async def test_a_batch_whose_first_note_another_settlement_finished_meanwhile_writes_the_rest(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MongoDB: the batch claimed two sessions, noting on each the entry it owes; before it
    writes them, another settlement of the first session finds the note there and writes its
    entry. The batch's write of both meets the first as a duplicate and still writes the
    second (x__insert_once__mutmut_5 and _7 inserted them in order, and stopped at the
    duplicate: the second entry was lost, its note cleared all the same; _8 failed on the
    duplicate instead of passing it by)."""
    first, second = await pending(storage, tenant), await pending(storage, tenant)
    insert_many = AsyncCollection.insert_many
    finished: list[str] = []

    async def after_another_finished_the_first(
        self: AsyncCollection[Document], documents: list[Document], *args: Any, **kwargs: Any
    ) -> Any:
        if self.name == "ledger" and not finished:
            finished.append(documents[0]["session_id"])
            # Charged already (by the batch's claim): it finishes the note, and claims nothing.
            assert await storage.ledger.settle(tenant.id, finished[0], 0, 6, at(11)) is None
        return await insert_many(self, documents, *args, **kwargs)

    monkeypatch.setattr(AsyncCollection, "insert_many", after_another_finished_the_first)
    settled = await storage.ledger.settle_many(
        tenant.id, [Priced(first, 6), Priced(second, 6)], at(10)
    )
    monkeypatch.undo()

    assert finished in ([first.id], [second.id])
    assert set(settled) == {first.id, second.id}
    assert sorted(c.balance_after for c in settled.values()) == [-12, -6]  # one after the other
    assert await user_1s_charges(storage, tenant) == {first.id: [-6], second.id: [-6]}
    assert (await storage.ledger.balance(tenant.id, "user-1")).balance == -12


async def test_a_batch_reads_its_sessions_in_its_own_tenant(storage: Any, tenant: Tenant) -> None:
    """The batch reads the charge states of the sessions it was given in its own tenant: another
    tenant's session of the same id (a copy of the tenant imported beside it keeps the ids),
    charged already, does not stand for the batch's own, pending (xǁMongoCreditLedgerǁ
    _settle_many__mutmut_6 read every session of every tenant, and took the copy's state for
    it: the session was left unsettled)."""
    mine = await pending(storage, tenant)
    other = await add_tenant(storage, "copy")
    copy = replace(a_session(other, kind="counseling"), id=mine.id)
    assert await storage.sessions.add(copy)
    await storage.sessions.close(other.id, copy.id, Exit(at=at(2)), RATED, NOW, SHUT)
    assert await storage.ledger.settle(other.id, copy.id, 0, 4, at(5)) == Charge(
        4, -4, "negative_balance"
    )

    settled = await storage.ledger.settle_many(tenant.id, [Priced(mine, 6)], at(10))

    assert settled == {mine.id: Charge(6, -6, "negative_balance")}
    assert await user_1s_charges(storage, tenant) == {mine.id: [-6]}
    assert (await storage.ledger.settled(other.id, copy.id)).charge == Charge(
        4, -4, "negative_balance"
    )


@on_mongodb
async def test_a_batch_finishes_a_cut_short_settlement_of_a_session_corrected_since(
    storage: Any, tenant: Tenant
) -> None:
    """MongoDB: a settlement of revision 0 claimed the session and died before writing its
    entry, leaving its note on the session; then a late event repriced it (revision 1). The
    reaper's batch finishes the note first (the charge of revision 0 written), then settles
    revision 1 as an adjustment (xǁMongoCreditLedgerǁ_settle_many__mutmut_29 and _30 read the
    sessions without their notes: the note stayed, the claim found it in the way, and the
    session was left unsettled; _32 and _33 read them without their tenant, and finishing the
    note failed; _35 to _41 looked for the note under another name, or broke finishing it)."""
    session = await pending(storage, tenant)
    await claimed_by_a_settlement_that_died(storage, tenant.id, session.id)  # 6 credits
    late = Event(session.id, 1, "analysis", at(2), meters={"analysis": 1})
    await storage.events.append(tenant.id, [(0, late)], NOW, OPEN)
    corrected = await storage.sessions.get(tenant.id, session.id)
    assert (corrected.charge_state, corrected.charge_revision) == (ChargeState.PENDING, 1)

    settled = await storage.ledger.settle_many(tenant.id, [Priced(corrected, 8)], at(20))

    assert settled == {session.id: Charge(8, -8, "negative_balance")}
    entries = await storage.ledger.entries(tenant.id, "user-1", limit=10)
    assert [(e.kind, e.amount, e.session_revision) for e in entries] == [
        (EntryKind.CHARGE, -6, 0),
        (EntryKind.ADJUSTMENT, -2, 1),
    ]


async def test_a_batch_leaves_out_a_session_charged_since_it_was_read(
    storage: Any, tenant: Tenant
) -> None:
    """A session the batch was given as read, pending, but charged since by its own settlement,
    is left out, and does not count in its subject's balance for the sessions settled after it
    (xǁMongoCreditLedgerǁ_settle_many__mutmut_61 let every session found through to the
    decision: its price was taken from the balance again, and the next session's balance_after
    and warning were wrong)."""
    first, second = sorted(
        [await pending(storage, tenant), await pending(storage, tenant, 2)], key=lambda s: s.id
    )  # the batch settles in session id order
    assert await storage.ledger.settle(tenant.id, first.id, 0, 6, at(10)) == Charge(
        6, -6, "negative_balance"
    )

    settled = await storage.ledger.settle_many(
        tenant.id, [Priced(first, 6), Priced(second, 4)], at(20)
    )

    assert settled == {second.id: Charge(4, -10, "negative_balance")}
    assert await user_1s_charges(storage, tenant) == {first.id: [-6], second.id: [-4]}


async def test_a_batch_settles_a_correction_that_changes_no_price_with_no_entry(
    storage: Any, tenant: Tenant
) -> None:
    """A late event corrects a charged session without changing its price: the batch settles
    the new revision, charged again at the same price, and writes no entry for a difference of
    0 (xǁMongoCreditLedgerǁ_settle_many__mutmut_85 wrote the entry it did not have, and
    failed)."""
    session = await pending(storage, tenant)
    assert await storage.ledger.settle(tenant.id, session.id, 0, 6, at(10)) is not None
    late = Event(session.id, 1, "analysis", at(2), meters={"analysis": 1})
    await storage.events.append(tenant.id, [(0, late)], NOW, OPEN)
    corrected = await storage.sessions.get(tenant.id, session.id)
    assert (corrected.charge_state, corrected.charge_revision) == (ChargeState.PENDING, 1)

    settled = await storage.ledger.settle_many(tenant.id, [Priced(corrected, 6)], at(20))

    assert settled == {session.id: Charge(6, -6, "negative_balance")}
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.charge_state, stored.charge_revision) == (ChargeState.CHARGED, 1)
    assert await user_1s_charges(storage, tenant) == {session.id: [-6]}


@on_mongodb
async def test_a_batch_that_loses_its_claim_to_a_correction_does_not_count_an_earlier_claim(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MongoDB: a session settled by an earlier batch (which marked it claimed by that batch)
    is corrected, and a second correction lands between the next batch's read and its claim:
    the claim misses it, and the batch, looking for what it claimed by its own claim id, does
    not find it (xǁMongoCreditLedgerǁ_settle_many__mutmut_75 used the same claim id for
    every batch: the earlier batch's mark was taken for this one's, and the session answered
    as charged while it stayed pending)."""
    session = await pending(storage, tenant)
    assert await storage.ledger.settle_many(tenant.id, [Priced(session, 6)], at(10)) == {
        session.id: Charge(6, -6, "negative_balance")
    }
    late = Event(session.id, 1, "analysis", at(2), meters={"analysis": 1})
    await storage.events.append(tenant.id, [(0, late)], NOW, OPEN)
    corrected = await storage.sessions.get(tenant.id, session.id)
    bulk_write = AsyncCollection.bulk_write
    corrections: list[int] = []

    async def after_another_correction(
        self: AsyncCollection[Document], requests: Any, *args: Any, **kwargs: Any
    ) -> Any:
        if self.name == "sessions" and not corrections:
            corrections.append(2)
            later = Event(session.id, 2, "analysis", at(2.5), meters={"analysis": 1})
            await storage.events.append(tenant.id, [(0, later)], NOW, OPEN)
        return await bulk_write(self, requests, *args, **kwargs)

    monkeypatch.setattr(AsyncCollection, "bulk_write", after_another_correction)
    settled = await storage.ledger.settle_many(tenant.id, [Priced(corrected, 8)], at(20))
    monkeypatch.undo()

    assert corrections == [2]
    assert settled == {}
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.charge_state, stored.charge_revision) == (ChargeState.PENDING, 2)
    assert await user_1s_charges(storage, tenant) == {session.id: [-6]}


@on_mongodb
async def test_a_batch_clears_the_notes_it_wrote(storage: Any, tenant: Tenant) -> None:
    """MongoDB: once the batch has written the entries and alerts its claims noted, it clears
    the notes, as a single settlement does: none is left for the next settlement, the erasure
    or the reaper to finish again (xǁMongoCreditLedgerǁ_settle_many__mutmut_180 to _184, _187,
    _188, _191 and _192 cleared no note: their update matched no session, or set another
    field)."""
    sessions = [await pending(storage, tenant), await pending(storage, tenant, 2)]

    settled = await storage.ledger.settle_many(tenant.id, [Priced(s, 6) for s in sessions], at(10))

    assert set(settled) == {s.id for s in sessions}
    notes = storage.db["sessions"].find({"tenant_id": tenant.id}, {"id": 1, "due": 1})
    assert {d["id"]: d.get("due") async for d in notes} == {s.id: None for s in sessions}
