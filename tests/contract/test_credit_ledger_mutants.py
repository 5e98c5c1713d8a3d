"""Gaps found by mutation testing of the SQL credit ledger's atomic steps
(adapters.sqlalchemy.credits: CreditLedger.settle, _settle, settled, _settled; `make mutants`):
each test here failed with one surviving mutant applied, and holds on every store it runs on."""

from typing import Any

import pytest

from adapters.sqlalchemy.asyncpg_settlements import AsyncpgSettlement
from domain.credits import Balance, EntryKind
from domain.errors import NotFound
from domain.events import Event
from domain.session import Charge, ChargeState, Exit
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, SHUT, a_grant, add_tenant, at, stored_session

pytestmark = pytest.mark.anyio

RATED = frozenset({"counseling"})


async def test_a_settled_session_is_read_only_in_its_own_tenant(
    storage: Any, tenant: Tenant
) -> None:
    """`settled` finds a session by tenant and id: another tenant asking for the same id finds
    nothing (xǁSqlCreditLedgerǁsettled__mutmut_4 dropped the tenant from its query)."""
    other = await add_tenant(storage, "other")
    session = await stored_session(storage, tenant, kind="counseling")
    await storage.sessions.close(tenant.id, session.id, Exit(at=at(3)), RATED, NOW, SHUT)
    assert await storage.ledger.settle(tenant.id, session.id, 0, 6, at(10)) is not None

    with pytest.raises(NotFound):
        await storage.ledger.settled(other.id, session.id)
    assert (await storage.ledger.settled(tenant.id, session.id)).id == session.id


async def test_settling_or_reading_a_missing_session_says_which_one(
    storage: Any, tenant: Tenant
) -> None:
    """NotFound's detail is a sentence for a person (domain.errors), which the HTTP answer
    carries: it names the session (x__settled__mutmut_7 and xǁSqlCreditLedgerǁsettled__mutmut_16
    raised NotFound(None))."""
    with pytest.raises(NotFound) as settling:
        await storage.ledger.settle(tenant.id, "no-such-session", 0, 6, at(10))
    with pytest.raises(NotFound) as reading:
        await storage.ledger.settled(tenant.id, "no-such-session")

    assert settling.value.detail == reading.value.detail == "no session no-such-session"


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_a_settlement_that_lost_both_claims_returns_none_and_leaves_the_session_pending(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a claim that lost (a grant moved the balance between its read and its claim)
    is made again holding the subject's turn; if that one loses too (a late event repriced the
    session between its read and its claim: appends do not take the subject's turn), settle
    answers None, as for any settlement another writer got ahead of, and the session is left
    pending at its new revision (xǁSqlCreditLedgerǁsettle__mutmut_15 returned the internal
    Lost marker instead)."""
    await storage.ledger.grant(a_grant(tenant, 10, "welcome"))
    session = await stored_session(storage, tenant, kind="counseling")
    await storage.sessions.close(tenant.id, session.id, Exit(at=at(5)), RATED, NOW, SHUT)
    read = AsyncpgSettlement.read
    reads: list[bool] = []

    async def read_then_a_concurrent_write(self: AsyncpgSettlement, *args: Any) -> Any:
        found = await read(self, *args)
        reads.append(True)
        if len(reads) == 1:  # the autocommitted attempt: the balance moves on
            await storage.ledger.grant(a_grant(tenant, 5, "top-up"))
        elif len(reads) == 2:  # the attempt taking turns: the session is priced again
            late = Event(session.id, 1, "analysis", at(4), meters={"analysis": 1})
            await storage.events.append(tenant.id, [(0, late)], NOW, OPEN)
        return found

    monkeypatch.setattr(AsyncpgSettlement, "read", read_then_a_concurrent_write)
    outcome = await storage.ledger.settle(tenant.id, session.id, 0, 10, at(6))
    monkeypatch.undo()

    assert outcome is None
    assert len(reads) == 2
    pending = await storage.ledger.settled(tenant.id, session.id)
    assert (pending.charge_state, pending.charge_revision) == (ChargeState.PENDING, 1)
    entries = await storage.ledger.entries(tenant.id, "user-1", limit=10)
    assert [e.kind for e in entries] == [EntryKind.GRANT, EntryKind.GRANT]
    # The settlement of the new revision claims it.
    assert await storage.ledger.settle(tenant.id, session.id, 1, 13, at(7)) == Charge(13, 2, None)
    assert await storage.ledger.balance(tenant.id, "user-1") == Balance("user-1", 15, 13)
