"""Hostile review of the charge settled in the close's own write (SessionRepository.close with a
ChargeOnClose; PostgreSQL's `_unless_changed` fold, migration 0031) and of SqlCreditLedger.settle's
turn-taking retry of a lost claim. Each test probes one risk: "Risk checked (holds)" where it
held, "Defect found in review, fixed" where it did not (the test failed on the change as
reviewed, 2086dba's, and passes on its fix)."""

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from adapters.sqlalchemy import asyncpg_sessions
from adapters.sqlalchemy.asyncpg_settlements import AsyncpgSettlement
from adapters.sqlalchemy.asyncpg_statements import asyncpg_connection
from application.credits.ports import LedgerHeld
from application.data_rights.erase_subject import EraseSubjectCommand
from application.sessions.record_exit import RecordExitCommand
from domain.charging import NEGATIVE_BALANCE, ChargeOnClose
from domain.credits import EntryKind, MeterRate, Rate, Rounding
from domain.erasure import PSEUDONYM_PREFIX
from domain.session import Charge, ChargeState, Closing, Exit, Session, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, SHUT, a_grant, at, stored_session, wired
from tests.contract.ledger_sums import kept_and_summed
from tests.contract.races import Proxy, Race
from tests.contract.test_charge_on_close import after_close
from tests.contract.test_finished_room_sweep_review import (
    left_open,
    reaping,
)
from tests.contract.test_redelivery_review import ROOM_END, WITH_THE_ROOM, ended_with_the_room
from tests.contract.test_todays_fixes_review import (
    a_server,
    deliver,
    stamped,
)
from tests.fakes import FakeClock, FakeTally

pytestmark = pytest.mark.anyio
on_postgresql = pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)

COUNSELING = Rate("counseling", 2, Rounding.CEIL, {"analysis": MeterRate(Decimal("1"), 3)})
FREE = Rate("counseling", 0, Rounding.CEIL, {})
# 2.5 minutes at 2 a minute (5), and 4 analyses at 3 (12).
EXIT = Exit(at=at(2.5), usage={"analysis": 4})
PRICE = 17
BARE_EXIT = Exit(at=at(2.5))
BARE_PRICE = 5  # 2.5 minutes at 2 a minute
REAPED = Exit(at=at(1), status=SessionStatus.TIMED_OUT)
REAPED_PRICE = 2


def settles_in_close(storage_url: str) -> bool:
    return storage_url == "memory://" or storage_url.startswith("postgresql")


async def rated(storage: Any, tenant: Tenant, rate: Rate = COUNSELING, credits: int = 100) -> Any:
    await storage.rates.put(tenant.id, rate)
    if credits:
        await storage.ledger.grant(a_grant(tenant, credits, "welcome"))
    return ChargeOnClose({rate.kind: rate}, at(60))


async def close(
    storage: Any,
    tenant: Tenant,
    session_id: str,
    charge: ChargeOnClose | None,
    exit: Exit = EXIT,
    window: Any = SHUT,
) -> tuple[Session, Closing]:
    rated_kinds = charge.rated_kinds if charge is not None else frozenset({"counseling"})
    closed: tuple[Session, Closing] = await storage.sessions.close(
        tenant.id, session_id, exit, rated_kinds, NOW, window, charge=charge
    )
    return closed


def deduct(storage: Any, tally: FakeTally | None = None) -> Any:
    return wired(storage, FakeClock(at(60)), tally=tally).use_cases().deduct_credits()


async def charges_of(storage: Any, tenant: Tenant, subject: str = "user-1") -> list[Any]:
    entries = await storage.ledger.entries(tenant.id, subject, limit=100)
    return sorted((e.session_id, e.amount) for e in entries if e.kind is not EntryKind.GRANT)


async def balance(storage: Any, tenant: Tenant, subject: str = "user-1") -> int:
    return int((await storage.ledger.balance(tenant.id, subject)).balance)


async def made_negative(storage: Any, tenant: Tenant, by: int) -> None:
    """Another session of the subject charged `by` more than the welcome grant of 10."""
    other = await stored_session(storage, tenant, kind="counseling")
    await storage.sessions.close(
        tenant.id, other.id, BARE_EXIT, frozenset({"counseling"}), NOW, SHUT
    )
    await storage.ledger.settle(tenant.id, other.id, 0, 10 + by, at(30))


# 1. A charge of 0 credits (no ledger entry, no alert): the fold's statement has no records


async def test_a_free_close_while_the_subjects_ledger_is_held_leaves_the_charge_to_its_settlement(
    storage: Any, tenant: Tenant
) -> None:
    """Defect found in review, fixed: a first charge of 0 credits on a positive balance writes
    no record, and the fold wrote the close with its charge WITHOUT the guard of migration 0031
    (asyncpg_sessions.save_unless_changed took no records for no settlement): an erasure
    holding the subject's ledger did not stop it, and the balance it recorded was the unlocked
    read's. CreditLedger.settle's claim always takes the turn, records or none."""
    charge = await rated(storage, tenant, FREE)
    session = await stored_session(storage, tenant, kind="counseling")

    async def closes() -> Any:
        return await close(storage, tenant, session.id, charge)

    closed, _ = await storage.erasure.with_ledgers_held(tenant.id, {"user-1"}, closes)

    assert (closed.charge_state, closed.charge) == (ChargeState.PENDING, None)


@on_postgresql
async def test_a_free_close_whose_subjects_balance_went_negative_since_its_read_alerts(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect found in review, fixed: the subject's balance goes from 10 to -5 (another
    session's charge) between the close's read and its write. A first charge of 0 on a
    negative balance records a negative_balance alert (domain.charging.settle); the fold,
    deciding from the 10 it read and writing no guard for a settlement without records,
    charged Charge(0, 10, None)."""
    charge = await rated(storage, tenant, FREE, credits=10)
    session = await stored_session(storage, tenant, kind="counseling")
    save = asyncpg_sessions.save_unless_changed
    moved: list[bool] = []

    async def charged_first(*args: Any) -> Any:
        if "charge_state" in args[3] and not moved:  # the close with its charge
            moved.append(True)
            await made_negative(storage, tenant, by=5)
        return await save(*args)

    monkeypatch.setattr(asyncpg_sessions, "save_unless_changed", charged_first)
    closed, closing = await close(storage, tenant, session.id, charge)
    settled = await after_close(deduct(storage), closed, closing)

    assert moved
    assert settled.charge == Charge(0, -5, NEGATIVE_BALANCE)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.charge == Charge(0, -5, NEGATIVE_BALANCE)


async def test_a_free_close_on_a_positive_balance_charges_zero_once(
    storage: Any, tenant: Tenant, storage_url: str
) -> None:
    """Risk checked (holds): a charge of 0 credits with nothing to record: the close comes back
    charged (where the store folds) with no entry, the tally hears of 0 once, the balance is
    untouched."""
    charge = await rated(storage, tenant, FREE)
    session = await stored_session(storage, tenant, kind="counseling")
    tally = FakeTally()

    closed, closing = await close(storage, tenant, session.id, charge)
    settled = await after_close(deduct(storage, tally), closed, closing)

    if settles_in_close(storage_url):
        assert closed.charge_state is ChargeState.CHARGED
    assert settled.charge == Charge(0, 100, None)
    assert tally.told == [0]
    assert await charges_of(storage, tenant) == []
    assert await balance(storage, tenant) == 100


# 2. Every shape of the fold's statement: usage present or absent by entry / entry + alert /
#    alert only


@on_postgresql
@pytest.mark.parametrize("with_usage", [True, False])
@pytest.mark.parametrize("shape", ["entry", "entry+alert", "alert"])
async def test_every_shape_of_the_folded_close_is_written_with_its_parameters_in_place(
    storage: Any, tenant: Tenant, with_usage: bool, shape: str
) -> None:
    """Risk checked (holds): the generated UPDATE … WITH statement numbers its parameters right
    for usage present or absent and for each record shape (entry only, entry + alert, alert
    only): the close comes back charged in its own write, the stored session, its meters, the
    entry, the alert and the kept balance all agree."""
    rate = FREE if shape == "alert" else COUNSELING
    credits = 100 if shape == "entry" else 10
    charge = await rated(storage, tenant, rate, credits=credits)
    if shape == "alert":
        await made_negative(storage, tenant, by=5)
    session = await stored_session(storage, tenant, kind="counseling")
    exit = EXIT if with_usage else BARE_EXIT
    before = await balance(storage, tenant)

    closed, closing = await close(storage, tenant, session.id, charge, exit)

    price = 0 if shape == "alert" else (PRICE if with_usage else BARE_PRICE)
    alert = NEGATIVE_BALANCE if before - price < 0 or shape == "alert" else None
    assert closing is Closing.CLOSED
    assert closed.charge_state is ChargeState.CHARGED, shape
    assert closed.charge == Charge(price, before - price, alert)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored == closed
    assert stored.usage == ({"analysis": 4} if with_usage else {})
    charged = [(sid, amount) for sid, amount in await charges_of(storage, tenant)]
    assert ((session.id, -price) in charged) is (price != 0)
    alerts = [a for a in await storage.ledger.alerts(tenant.id, 20) if a.session_id == session.id]
    assert len(alerts) == (1 if alert else 0)
    kept, summed = await kept_and_summed(storage, tenant.id)
    assert kept == summed
    assert await balance(storage, tenant) == before - price


# 3. Sessions the fold must leave alone


async def test_a_pseudonyms_session_is_left_to_its_settlement_and_charged_once(
    storage: Any, tenant: Tenant
) -> None:
    """Risk checked (holds): a session whose subject is a pseudonym is not settled in the close
    (ChargeOnClose.settlement), and DeductCredits then charges it once, told once."""
    pseudonym = PSEUDONYM_PREFIX + "ab" * 16
    await storage.rates.put(tenant.id, COUNSELING)
    await storage.ledger.grant(a_grant(tenant, 100, "welcome", subject=pseudonym))
    charge = ChargeOnClose({COUNSELING.kind: COUNSELING}, at(60))
    session = await stored_session(storage, tenant, kind="counseling", subject_id=pseudonym)
    tally = FakeTally()

    closed, closing = await close(storage, tenant, session.id, charge)
    assert (closed.charge_state, closed.charge) == (ChargeState.PENDING, None)
    settled = await after_close(deduct(storage, tally), closed, closing)

    assert settled.charge == Charge(PRICE, 100 - PRICE, None)
    assert tally.told == [PRICE]
    assert await balance(storage, tenant, pseudonym) == 100 - PRICE


async def test_a_session_without_a_subject_and_an_unrated_kind_close_uncharged(
    storage: Any, tenant: Tenant
) -> None:
    """Risk checked (holds): a tenant with rates: a rated session with no subject (a client
    key) and a session of a kind without a rate both close NOT_CHARGED through the read with a
    balance, write nothing to the ledger, and tell the tally nothing."""
    charge = await rated(storage, tenant)
    anonymous = await stored_session(
        storage, tenant, kind="counseling", subject_id=None, client_key="browser-1"
    )
    unrated = await stored_session(storage, tenant, kind="webinar")
    tally = FakeTally()

    for session in (anonymous, unrated):
        closed, closing = await close(storage, tenant, session.id, charge)
        assert closing is Closing.CLOSED
        assert (closed.charge_state, closed.charge) == (ChargeState.NOT_CHARGED, None)
        await after_close(deduct(storage, tally), closed, closing)
        stored = await storage.sessions.get(tenant.id, session.id)
        assert (stored.charge_state, stored.charge) == (ChargeState.NOT_CHARGED, None)

    assert tally.told == []
    assert await charges_of(storage, tenant) == []
    assert await balance(storage, tenant) == 100


# 4. The tally: each first charge told exactly once


async def test_a_replayed_exit_after_a_folded_close_tells_the_tally_nothing_more(
    storage: Any, tenant: Tenant
) -> None:
    """Risk checked (holds): RecordExit twice with the same exit (a client's retry): the first
    closes and charges (in its write where the store can), the replay writes nothing, and the
    tally hears of the charge once; one charge entry."""
    await rated(storage, tenant)
    session = await stored_session(storage, tenant, kind="counseling")
    tally = FakeTally()
    command = RecordExitCommand(tenant.id, session.id, at=at(2.5), usage={"analysis": 4})

    first = await wired(storage, FakeClock(at(60)), tally=tally).use_cases().record_exit()(command)
    again = await wired(storage, FakeClock(at(61)), tally=tally).use_cases().record_exit()(command)

    assert (first.closing, again.closing) == (Closing.CLOSED, Closing.REPLAY)
    assert first.session.charge == again.session.charge == Charge(PRICE, 100 - PRICE, None)
    assert tally.told == [PRICE]
    assert await charges_of(storage, tenant) == [(session.id, -PRICE)]


async def test_a_correction_of_a_reaper_closed_pending_session_is_charged_and_told_once(
    storage: Any, tenant: Tenant
) -> None:
    """Risk checked (holds): the reaper closed the session (timed out) and stopped before
    charging it; the client's exit corrects it (CORRECTED, revision 1): its first charge is
    settled at the corrected price (in the close where the store folds), told once, and the
    reaper's next settlement of it finds nothing to do."""
    charge = await rated(storage, tenant)
    session = await stored_session(storage, tenant, kind="counseling")
    await close(storage, tenant, session.id, None, REAPED)
    tally = FakeTally()

    corrected, closing = await close(storage, tenant, session.id, charge, EXIT, OPEN)
    assert closing is Closing.CORRECTED
    settled = await after_close(deduct(storage, tally), corrected, closing)
    stale = await storage.sessions.get(tenant.id, session.id)
    await deduct(storage, tally).settle_many([stale])

    assert settled.charge == Charge(PRICE, 100 - PRICE, None)
    assert tally.told == [PRICE]
    assert await charges_of(storage, tenant) == [(session.id, -PRICE)]
    assert await balance(storage, tenant) == 100 - PRICE


async def test_a_correction_of_a_reaper_closed_charged_session_adjusts_without_a_second_tally(
    storage: Any, tenant: Tenant
) -> None:
    """Risk checked (holds): the reaper's close was charged (2 credits, told once); the client's
    exit corrects it: not settled in the close (an adjustment is DeductCredits'), adjusted to
    17 by one entry, and the tally hears nothing more."""
    charge = await rated(storage, tenant)
    session = await stored_session(storage, tenant, kind="counseling")
    reaped, _ = await close(storage, tenant, session.id, None, REAPED)
    tally = FakeTally()
    await deduct(storage, tally)(reaped)
    assert tally.told == [REAPED_PRICE]

    corrected, closing = await close(storage, tenant, session.id, charge, EXIT, OPEN)
    assert (closing, corrected.charge_state) == (Closing.CORRECTED, ChargeState.PENDING)
    settled = await after_close(deduct(storage, tally), corrected, closing)

    assert settled.charge is not None and settled.charge.credits == PRICE
    assert tally.told == [REAPED_PRICE]
    assert await balance(storage, tenant) == 100 - PRICE
    assert sum(amount for _, amount in await charges_of(storage, tenant)) == -PRICE


async def test_duplicate_exits_of_one_session_at_once_charge_and_tell_once(
    storage: Any, tenant: Tenant, race: Race, tally: FakeTally
) -> None:
    """Risk checked (holds): six deliveries of one exit at once through RecordExit: one closes
    (and charges), the others replay; one charge entry, the tally told once, every caller sees
    the same charge."""
    await rated(storage, tenant)
    session = await stored_session(storage, tenant, kind="counseling")
    command = RecordExitCommand(tenant.id, session.id, at=at(2.5), usage={"analysis": 4})

    def exits(s: Any) -> Any:
        return wired(s, FakeClock(at(60))).use_cases().record_exit()(command)

    exited = await race(*(exits for _ in range(6)))

    assert sorted(e.closing.value for e in exited).count(Closing.CLOSED.value) == 1
    assert {e.session.charge for e in exited} == {Charge(PRICE, 100 - PRICE, None)}
    assert tally.told == [PRICE]
    assert await charges_of(storage, tenant) == [(session.id, -PRICE)]


# 5. The fold against the reaper's batch (settle_many) of the same subject


@pytest.mark.parametrize("round_", range(2))
async def test_exits_folding_while_the_reapers_batch_settles_the_same_subject(
    storage: Any, tenant: Tenant, race: Race, tally: FakeTally, round_: int
) -> None:
    """Risk checked (holds): six exits of one subject's sessions (folding) race two reaper
    batches (DeductCredits.settle_many: try-locks then rows FOR UPDATE) of six other pending
    sessions of that subject: no deadlock, no error, each session charged once, each from the
    balance the ones before it left (balance_after one step of 100, 83, …), the tally told once
    each; what the batches leave pending a later settlement finishes."""
    await rated(storage, tenant, credits=300)
    exiting = [await stored_session(storage, tenant, kind="counseling") for _ in range(6)]
    pending = []
    for _ in range(6):
        s = await stored_session(storage, tenant, kind="counseling")
        closed, _ = await close(storage, tenant, s.id, None)
        pending.append(closed)

    def exits(session_id: str) -> Any:
        command = RecordExitCommand(tenant.id, session_id, at=at(2.5), usage={"analysis": 4})
        return lambda s: wired(s, FakeClock(at(60))).use_cases().record_exit()(command)

    def batch(s: Any) -> Any:
        return deduct(s).settle_many([p.copy() for p in pending])

    await race(batch, *(exits(s.id) for s in exiting), batch)
    for p in pending:  # what the batches left for the next run
        await deduct(storage)(await storage.sessions.get(tenant.id, p.id))

    stored = [await storage.sessions.get(tenant.id, s.id) for s in exiting + pending]
    assert {s.charge_state for s in stored} == {ChargeState.CHARGED}
    after = sorted((s.charge.balance_after for s in stored), reverse=True)
    assert after == [300 - PRICE * n for n in range(1, 13)]
    assert tally.told == [PRICE] * 12
    assert sorted(sid for sid, _ in await charges_of(storage, tenant)) == sorted(
        s.id for s in stored
    )
    assert await balance(storage, tenant) == 300 - 12 * PRICE


@pytest.mark.parametrize("round_", range(2))
async def test_exits_folding_while_the_subject_is_erased_charge_each_session_once(
    storage: Any, tenant: Tenant, race: Race, tally: FakeTally, round_: int
) -> None:
    """Risk checked (holds): six exits of one subject's sessions race the subject's erasure
    (which holds the subject's ledger lock and gives the sessions a pseudonym): each exit
    closes; once pending charges are settled (the reaper's, after the erasure), each session
    is charged once, the tally told once each, and the whole ledger (moved to the pseudonym)
    sums to the grant less the six charges."""
    await rated(storage, tenant)
    sessions = [await stored_session(storage, tenant, kind="counseling") for _ in range(6)]

    def exits(session_id: str) -> Any:
        command = RecordExitCommand(tenant.id, session_id, at=at(2.5), usage={"analysis": 4})
        return lambda s: wired(s, FakeClock(at(60))).use_cases().record_exit()(command)

    def erases(s: Any) -> Any:
        use_cases = wired(s, FakeClock(at(60))).use_cases()
        return use_cases.erase_subject()(EraseSubjectCommand(tenant, "user-1"))

    await race(*(exits(s.id) for s in sessions[:3]), erases, *(exits(s.id) for s in sessions[3:]))
    stored = [await storage.sessions.get(tenant.id, s.id) for s in sessions]
    for s in stored:
        if s.charge_state is ChargeState.PENDING:
            await deduct(storage)(s)
    stored = [await storage.sessions.get(tenant.id, s.id) for s in sessions]

    assert {s.charge_state for s in stored} == {ChargeState.CHARGED}
    assert tally.told == [PRICE] * 6
    subjects = {s.subject_id for s in stored}
    assert len(subjects) == 1 and "user-1" not in subjects
    (pseudonym,) = subjects
    assert pseudonym is not None
    assert await balance(storage, tenant, pseudonym) == 100 - 6 * PRICE
    assert await charges_of(storage, tenant, "user-1") == []
    assert len(await charges_of(storage, tenant, pseudonym)) == 6


# 6. SqlCreditLedger.settle's turn-taking retry


@on_postgresql
async def test_a_lost_claim_is_retried_taking_turns_and_leaves_no_lock_timeout_behind(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Risk checked (holds): a grant lands between the settlement's read and its claim, so the
    claim loses; the retry in a transaction holding the subject's turn settles from the balance
    with the grant (150 - 17), and the lock_timeout its ledger_balance_locked set (set_config
    local to the transaction) is not left on the pooled connections."""
    await rated(storage, tenant)
    session = await stored_session(storage, tenant, kind="counseling")
    closed, _ = await close(storage, tenant, session.id, None)
    claim = AsyncpgSettlement.claim
    claims: list[bool] = []

    async def granted_first(self: AsyncpgSettlement, found: Any) -> bool:
        if not claims:
            await storage.ledger.grant(a_grant(tenant, 50, "in between"))
        claims.append(True)
        return await claim(self, found)

    monkeypatch.setattr(AsyncpgSettlement, "claim", granted_first)
    charged = await storage.ledger.settle(tenant.id, session.id, 0, PRICE, at(60))

    assert len(claims) == 2
    assert charged == Charge(PRICE, 150 - PRICE, None)
    for _ in range(4):
        async with asyncpg_connection(storage.engine) as driver:
            assert await driver.fetchval("SHOW lock_timeout") == "0"
    assert closed.charge_state is ChargeState.PENDING


@on_postgresql
async def test_a_folded_close_leaves_no_lock_held_and_no_lock_timeout_on_its_connection(
    storage: Any, tenant: Tenant
) -> None:
    """Risk checked (holds): after a close that settled in its write (its autocommitted
    statement took the subject's advisory lock), the subject's turn is free at once for a
    settlement of another of its sessions, and no pooled connection keeps a lock_timeout."""
    charge = await rated(storage, tenant)
    first = await stored_session(storage, tenant, kind="counseling")
    second = await stored_session(storage, tenant, kind="counseling")

    closed, _ = await close(storage, tenant, first.id, charge)
    assert closed.charge_state is ChargeState.CHARGED
    other, _ = await close(storage, tenant, second.id, None)
    assert await storage.ledger.settle(tenant.id, second.id, 0, PRICE, at(60)) == Charge(
        PRICE, 100 - 2 * PRICE, None
    )
    for _ in range(4):
        async with asyncpg_connection(storage.engine) as driver:
            assert await driver.fetchval("SHOW lock_timeout") == "0"
            assert not await driver.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            )
    assert other.charge_state is ChargeState.PENDING


async def test_a_subject_with_no_ledger_at_all_is_charged_below_zero_in_the_close(
    storage: Any, tenant: Tenant, storage_url: str
) -> None:
    """Risk checked (holds): a subject with no ledger entries (no ledger_balances row: the
    kept balance and ledger_balance_if_free both read 0 by coalesce) is charged in the close
    to -17 with a negative_balance alert, told once."""
    await storage.rates.put(tenant.id, COUNSELING)
    charge = ChargeOnClose({COUNSELING.kind: COUNSELING}, at(60))
    session = await stored_session(storage, tenant, kind="counseling", subject_id="nobody")
    tally = FakeTally()

    closed, closing = await close(storage, tenant, session.id, charge)
    if settles_in_close(storage_url):
        assert closed.charge_state is ChargeState.CHARGED
    settled = await after_close(deduct(storage, tally), closed, closing)

    assert settled.charge == Charge(PRICE, -PRICE, NEGATIVE_BALANCE)
    assert tally.told == [PRICE]
    assert await balance(storage, tenant, "nobody") == -PRICE


@on_postgresql
async def test_a_lost_claim_whose_retry_meets_an_erasure_holding_the_ledger_is_left_pending(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Risk checked (holds): the first claim loses (a grant in between), and an erasure then
    holds the subject's ledger: the retry's locked read waits 5 s (lock_timeout) and the
    settlement raises LedgerHeld (DeductCredits leaves the session pending), not a driver
    error; nothing is charged."""
    await rated(storage, tenant)
    session = await stored_session(storage, tenant, kind="counseling")
    closed, _ = await close(storage, tenant, session.id, None)
    claim = AsyncpgSettlement.claim
    held, release = asyncio.Event(), asyncio.Event()
    tasks: list[Any] = []

    async def holds() -> None:
        held.set()
        await release.wait()

    async def lost_then_held(self: AsyncpgSettlement, found: Any) -> bool:
        if not tasks:
            await storage.ledger.grant(a_grant(tenant, 50, "in between"))
            claimed = await claim(self, found)
            hold = storage.erasure.with_ledgers_held(tenant.id, {"user-1"}, holds)
            tasks.append(asyncio.ensure_future(hold))
            await held.wait()
            return claimed
        return await claim(self, found)

    monkeypatch.setattr(AsyncpgSettlement, "claim", lost_then_held)
    try:
        with pytest.raises(LedgerHeld):
            await storage.ledger.settle(tenant.id, session.id, 0, PRICE, at(60))
    finally:
        release.set()
        await asyncio.gather(*tasks)

    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.charge_state, stored.charge) == (ChargeState.PENDING, None)
    assert await balance(storage, tenant) == 150
    assert closed.charge_state is ChargeState.PENDING


@on_postgresql
async def test_a_claim_lost_to_a_correction_is_not_retried_into_a_stale_revision(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Risk checked (holds): the session is corrected (revision 1) between the settlement's
    read and its claim: the claim loses, the turn-taking retry finds revision 1 and claims
    nothing for revision 0; DeductCredits then charges revision 1 once, told once."""
    charge = await rated(storage, tenant)
    session = await stored_session(storage, tenant, kind="counseling")
    reaped, _ = await close(storage, tenant, session.id, None, REAPED)
    claim = AsyncpgSettlement.claim
    claims: list[bool] = []

    async def corrected_first(self: AsyncpgSettlement, found: Any) -> bool:
        if not claims:
            await close(storage, tenant, session.id, None, EXIT, OPEN)
        claimed = await claim(self, found)
        claims.append(claimed)
        return claimed

    monkeypatch.setattr(AsyncpgSettlement, "claim", corrected_first)
    tally = FakeTally()
    settled = await deduct(storage, tally)(reaped)

    assert claims[0] is False
    assert settled.charge == Charge(PRICE, 100 - PRICE, None)
    assert tally.told == [PRICE]
    assert await charges_of(storage, tenant) == [(session.id, -PRICE)]
    assert charge.rated_kinds == frozenset({"counseling"})


# 7. LiveKit: the reaper's finished-room sweep, room_finished redelivered, a client's exit


@pytest.mark.parametrize("attempt", range(2))
async def test_three_reapers_sweeping_one_stay_at_once_tell_its_charge_once(
    storage: Any, tenant: Tenant, race: Race, tally: FakeTally, attempt: int
) -> None:
    """Risk checked (holds): three reapers sweep the finished room at once; each ends the stay
    through RecordExit (one closes it, settling in its write where the store can, the others
    replay): one charge of 58, and the tally hears of it once."""
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)

    await race(*(lambda s: reaping(s),) * 3)

    written = await ended_with_the_room(storage, tenant, server)
    assert len(written) == 1
    assert tally.told == [WITH_THE_ROOM]


@pytest.mark.parametrize("attempt", range(2))
async def test_the_sweep_and_room_finished_redelivered_at_once_tell_the_charge_once(
    storage: Any, tenant: Tenant, race: Race, tally: FakeTally, attempt: int
) -> None:
    """Risk checked (holds): LiveKit redelivers room_finished while the reaper sweeps: one of
    the two closes the stay (and charges it in the close), the other replays: the tally hears
    of the charge once."""
    server = await a_server(storage, tenant)
    finished = server.webhook("room_finished", stamped(ROOM_END))
    await deliver(storage, finished)
    await left_open(storage, tenant, server, finish=False)

    await race(lambda s: reaping(s), lambda s: deliver(s, finished))

    written = await ended_with_the_room(storage, tenant, server)
    assert len(written) == 1
    assert tally.told == [WITH_THE_ROOM]


# 8. A step after the close fails: the client retries the exit


class FailsToRewind(Proxy):
    """The rollup leases: the first rewind fails (the connection drops), the next ones work."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.failed = False

    async def rewind(self, *args: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the connection dropped")
        return await self._inner.rewind(*args)


async def test_a_correction_whose_rewind_fails_is_retried_and_its_first_charge_still_told(
    storage: Any, tenant: Tenant, storage_url: str
) -> None:
    """Defect found in review, fixed: the reaper closed the session and left it pending; the
    client's exit corrects it (CORRECTED), and RecordExit marks the rolled-up hours
    (RollupRewinds). That mark fails; the client retries the exit, which replays. Where the
    close settled the first charge in its write (PostgreSQL, memory), the tally was told only
    after the mark, and the replay finds the session CHARGED: the tally never heard of the
    charge. RecordExit now tells it (DeductCredits.charged_in_close) right after the close."""
    await rated(storage, tenant)
    session = await stored_session(storage, tenant, kind="counseling")
    await close(storage, tenant, session.id, None, REAPED)
    tally = FakeTally()
    leases = FailsToRewind(storage.rollup_leases)
    command = RecordExitCommand(tenant.id, session.id, at=at(2.5), usage={"analysis": 4})

    def record_exit() -> Any:
        container = wired(storage, FakeClock(at(90)), tally=tally, rollup_leases=leases)
        return container.use_cases().record_exit()

    with pytest.raises(ConnectionError):
        await record_exit()(command)
    retried = await record_exit()(command)

    assert leases.failed
    assert retried.closing is Closing.REPLAY
    assert retried.session.charge == Charge(PRICE, 100 - PRICE, None)
    assert await charges_of(storage, tenant) == [(session.id, -PRICE)]
    assert tally.told == [PRICE], storage_url


@pytest.mark.parametrize("round_", range(3))
async def test_a_correction_racing_the_reapers_settlement_of_the_reaped_session(
    storage: Any, tenant: Tenant, race: Race, tally: FakeTally, round_: int
) -> None:
    """Risk checked (holds): the reaper closed the session (timed out, pending at 2 credits)
    and its batch settles it while the client's exit corrects it (folding its first charge at
    17 where it can): either the batch charges 2 and the correction is adjusted to 17, or the
    correction charges 17 and the batch finds nothing to claim. Charged to 17 in all, one
    first charge told."""
    await rated(storage, tenant)
    session = await stored_session(storage, tenant, kind="counseling")
    reaped, _ = await close(storage, tenant, session.id, None, REAPED)
    command = RecordExitCommand(tenant.id, session.id, at=at(2.5), usage={"analysis": 4})

    def corrects(s: Any) -> Any:
        return wired(s, FakeClock(at(60))).use_cases().record_exit()(command)

    def batch(s: Any) -> Any:
        return deduct(s).settle_many([reaped.copy()])

    await race(batch, corrects)
    stored = await storage.sessions.get(tenant.id, session.id)
    if stored.charge_state is ChargeState.PENDING:  # left for the reaper's next run
        await deduct(storage)(stored)
    stored = await storage.sessions.get(tenant.id, session.id)

    assert stored.charge_state is ChargeState.CHARGED
    assert stored.charge is not None and stored.charge.credits == PRICE
    assert sum(amount for _, amount in await charges_of(storage, tenant)) == -PRICE
    assert await balance(storage, tenant) == 100 - PRICE
    assert len(tally.told) == 1 and tally.told[0] in (REAPED_PRICE, PRICE)
