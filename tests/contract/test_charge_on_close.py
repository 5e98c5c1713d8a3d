"""A session's first charge settled in the write that closes it (SessionRepository.close with a
ChargeOnClose): PostgreSQL and memory do it when the subject's turn is free; SQLite and MongoDB,
and the others when the turn is taken, leave it pending for DeductCredits. Either way the
session is charged once, from the balance the subject's other settlements left, and the tally
hears of each first charge once."""

from decimal import Decimal
from typing import Any

import pytest

from adapters.sqlalchemy import asyncpg_sessions
from application.credits.deduct_credits import DeductCredits
from application.sessions.record_exit import RecordExitCommand
from domain.charging import ChargeOnClose
from domain.credits import EntryKind, MeterRate, Rate, Rounding
from domain.session import Charge, ChargeState, Closing, Exit
from domain.tenants import Tenant
from tests.contract.builders import NOW, SHUT, a_grant, at, stored_session, wired
from tests.contract.races import Race
from tests.fakes import FakeClock, FakeTally

pytestmark = pytest.mark.anyio

COUNSELING = Rate("counseling", 2, Rounding.CEIL, {"analysis": MeterRate(Decimal("1"), 3)})
# 2.5 minutes at 2 a minute, rounded up, and 4 analyses at 3: 17 credits.
EXIT = Exit(at=at(2.5), usage={"analysis": 4})
PRICE = 17


def settles_in_close(storage_url: str) -> bool:
    """The stores that settle in the close when the subject's turn is free."""
    return storage_url == "memory://" or storage_url.startswith("postgresql")


async def a_rated_tenant(storage: Any, tenant: Tenant, credits: int = 100) -> ChargeOnClose:
    await storage.rates.put(tenant.id, COUNSELING)
    await storage.ledger.grant(a_grant(tenant, credits, "welcome"))
    return ChargeOnClose({COUNSELING.kind: COUNSELING}, at(60))


async def close(storage: Any, tenant: Tenant, session_id: str, charge: ChargeOnClose) -> Any:
    return await storage.sessions.close(
        tenant.id, session_id, EXIT, charge.rated_kinds, NOW, SHUT, charge=charge
    )


async def after_close(deduct_credits: DeductCredits, session: Any, closing: Closing) -> Any:
    """What RecordExit does with the session its close returns."""
    deduct_credits.charged_in_close(session, closing)
    return await deduct_credits(session)


async def test_a_close_settles_the_first_charge_in_its_write_where_the_store_can(
    storage: Any, tenant: Tenant, storage_url: str
) -> None:
    charge = await a_rated_tenant(storage, tenant)
    session = await stored_session(storage, tenant, kind="counseling")
    tally = FakeTally()

    closed, closing = await close(storage, tenant, session.id, charge)

    assert closing is Closing.CLOSED
    entries = await storage.ledger.entries(tenant.id, "user-1", limit=10)
    charges = [(e.amount, e.session_id) for e in entries if e.kind is EntryKind.CHARGE]
    if settles_in_close(storage_url):
        assert closed.charge_state is ChargeState.CHARGED
        assert closed.charge == Charge(PRICE, 100 - PRICE, None)
        assert charges == [(-PRICE, session.id)]
        assert await storage.sessions.get(tenant.id, session.id) == closed
    else:
        assert (closed.charge_state, closed.charge, charges) == (ChargeState.PENDING, None, [])

    deduct_credits = wired(storage, FakeClock(at(60)), tally=tally).use_cases().deduct_credits()
    settled = await after_close(deduct_credits, closed, closing)

    assert settled.charge == Charge(PRICE, 100 - PRICE, None)
    assert (await storage.ledger.balance(tenant.id, "user-1")).balance == 100 - PRICE
    assert tally.told == [PRICE]


async def test_a_replayed_close_settles_nothing_in_its_write(storage: Any, tenant: Tenant) -> None:
    """A replay writes nothing: a charge a crash left pending is DeductCredits' to finish, and
    the tally's to hear of from the settlement that writes it."""
    charge = await a_rated_tenant(storage, tenant)
    session = await stored_session(storage, tenant, kind="counseling")
    await storage.sessions.close(tenant.id, session.id, EXIT, charge.rated_kinds, NOW, SHUT)

    replayed, closing = await close(storage, tenant, session.id, charge)

    assert (closing, replayed.charge_state, replayed.charge) == (
        Closing.REPLAY,
        ChargeState.PENDING,
        None,
    )
    assert (await storage.ledger.balance(tenant.id, "user-1")).balance == 100


async def test_a_close_while_the_subjects_ledger_is_held_leaves_the_charge_to_its_settlement(
    storage: Any, tenant: Tenant
) -> None:
    """An erasure holds the subject's ledger (Erasure.with_ledgers_held): the close does not
    wait for it, and decides nothing from the balance the erasure is moving."""
    charge = await a_rated_tenant(storage, tenant)
    session = await stored_session(storage, tenant, kind="counseling")

    async def closes() -> Any:
        return await close(storage, tenant, session.id, charge)

    closed, _ = await storage.erasure.with_ledgers_held(tenant.id, {"user-1"}, closes)

    assert (closed.charge_state, closed.charge) == (ChargeState.PENDING, None)
    assert (await storage.ledger.balance(tenant.id, "user-1")).balance == 100
    assert await storage.ledger.settle(tenant.id, session.id, 0, PRICE, at(60)) == Charge(
        PRICE, 100 - PRICE, None
    )


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_a_close_whose_subjects_balance_moved_since_its_read_leaves_the_charge_pending(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL reads the balance with the session, unlocked, and writes the close with its
    charge only if the balance is still that one once it holds the subject's turn: a grant
    lands in between, and the charge is then settled from the balance with it (150, not 100)."""
    charge = await a_rated_tenant(storage, tenant)
    session = await stored_session(storage, tenant, kind="counseling")
    save = asyncpg_sessions.save_unless_changed

    async def granted_first(*args: Any) -> Any:
        if len(args) > 5 and args[5]:  # the close with its charge's records
            await storage.ledger.grant(a_grant(tenant, 50, "in between"))
        return await save(*args)

    monkeypatch.setattr(asyncpg_sessions, "save_unless_changed", granted_first)
    closed, closing = await close(storage, tenant, session.id, charge)

    assert (closed.charge_state, closed.charge) == (ChargeState.PENDING, None)
    deduct_credits = wired(storage, FakeClock(at(60))).use_cases().deduct_credits()
    settled = await after_close(deduct_credits, closed, closing)
    assert settled.charge == Charge(PRICE, 150 - PRICE, None)
    assert (await storage.ledger.balance(tenant.id, "user-1")).balance == 150 - PRICE


@pytest.mark.parametrize("round_", range(2))
async def test_exits_of_one_subjects_sessions_at_once_each_charge_from_the_balance_left(
    storage: Any, tenant: Tenant, race: Race, tally: FakeTally, round_: int
) -> None:
    """Twelve exits of twelve sessions of one subject, at once, through RecordExit: each is
    charged once, and each from the balance the ones before it left (its balance_after is one
    step of 100, 83, 66, …), whether it settled in its close or waited its turn after it."""
    await a_rated_tenant(storage, tenant)
    sessions = [await stored_session(storage, tenant, kind="counseling") for _ in range(12)]

    def exits(session_id: str) -> Any:
        command = RecordExitCommand(tenant.id, session_id, at=at(2.5), usage={"analysis": 4})
        return lambda s: wired(s, FakeClock(at(60))).use_cases().record_exit()(command)

    exited = await race(*(exits(s.id) for s in sessions))

    after = sorted((e.session.charge.balance_after for e in exited), reverse=True)
    assert after == [100 - PRICE * n for n in range(1, 13)]
    assert tally.told == [PRICE] * 12
    entries = await storage.ledger.entries(tenant.id, "user-1", limit=50)
    assert sorted(e.session_id for e in entries if e.kind is EntryKind.CHARGE) == sorted(
        s.id for s in sessions
    )
    assert (await storage.ledger.balance(tenant.id, "user-1")).balance == 100 - 12 * PRICE
    stored = [await storage.sessions.get(tenant.id, s.id) for s in sessions]
    assert {s.charge_state for s in stored} == {ChargeState.CHARGED}
