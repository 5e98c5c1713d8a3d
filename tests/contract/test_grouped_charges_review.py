"""Review of the grouped charged exits (PostgreSQL): closes settling their first charge written
as one statement per group of one shape (grouped_sessions.GroupedSessions.settle,
asyncpg_sessions.save_many_unless_changed with records). Each member must be answered, and its
ledger entry and alert written, exactly as its own statement would have: from its own
subject's balance, only if its own close was written, never another member's records."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from adapters.sqlalchemy import asyncpg_sessions
from application.sessions.record_exit import RecordExitCommand
from domain.charging import NEGATIVE_BALANCE, ChargeOnClose
from domain.credits import EntryKind, Rate, Rounding
from domain.session import Charge, ChargeState, Session
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, a_grant, add_tenant, at, stored_session, wired
from tests.contract.test_grouped_statements import COUNSELING, PRICE, exit_at
from tests.contract.test_sqlalchemy_specifics import on_postgresql
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

CHARGE = ChargeOnClose({COUNSELING.kind: COUNSELING}, at(60))
RICH = 100  # a charge leaves 95: no alert
POOR = 3  # a charge leaves -2: an alert (another shape)


class Groups:
    """The members of each grouped write settling charges, as sent."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, before: Any = None) -> None:
        self.sent: list[list[Session]] = []
        save_many = asyncpg_sessions.save_many_unless_changed

        async def spied(driver: Any, read: Any, columns: Any, records: Any = None) -> Any:
            if records is not None:
                self.sent.append([session for session, _ in read])
                if before is not None:
                    await before([session for session, _ in read])
            return await save_many(driver, read, columns, records)

        monkeypatch.setattr(asyncpg_sessions, "save_many_unless_changed", spied)

    @property
    def largest(self) -> int:
        return max((len(group) for group in self.sent), default=0)


async def subjects_with(storage: Any, tenant: Tenant, balances: dict[str, int]) -> list[Session]:
    """A rated session of each subject, its subject granted its balance."""
    await storage.rates.put(tenant.id, COUNSELING)
    sessions = []
    for subject, balance in balances.items():
        await storage.ledger.grant(a_grant(tenant, balance, f"welcome-{subject}", subject))
        sessions.append(
            await stored_session(storage, tenant, kind="counseling", subject_id=subject)
        )
    return sessions


async def charged_close(storage: Any, session: Session) -> Any:
    return await storage.sessions.close(
        session.tenant_id,
        session.id,
        exit_at(2.5),
        CHARGE.rated_kinds,
        NOW,
        OPEN,
        charge=CHARGE,
    )


async def closed_at_once(storage: Any, sessions: list[Session]) -> list[Any]:
    return await asyncio.wait_for(
        asyncio.gather(*(charged_close(storage, s) for s in sessions)), 60
    )


async def charges_of(storage: Any, session: Session) -> list[Any]:
    entries = await storage.ledger.entries(session.tenant_id, session.subject_id, limit=50)
    return [e for e in entries if e.kind is not EntryKind.GRANT and e.reason != "spent"]


async def alerts_of(storage: Any, tenant_id: str) -> list[Any]:
    return list(await storage.ledger.alerts(tenant_id, 200))


def after(session: Session) -> int:
    """The balance its charge left."""
    assert session.charge is not None
    return session.charge.balance_after


def ledger_key(tenant_id: str, subject_id: str) -> str:
    return "\x1f".join(("ledger", tenant_id, subject_id))


@asynccontextmanager
async def held(storage_url: str, sql: str, *args: Any, commit: bool = False) -> AsyncIterator[None]:
    """`sql` run in a transaction of its own kept open (its locks held) until the block ends,
    then rolled back (`commit`: committed)."""
    connection = await asyncpg.connect(storage_url)
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute(sql, *args)
        try:
            yield
        finally:
            await (transaction.commit() if commit else transaction.rollback())
    finally:
        await connection.close()


HOLD_LEDGER = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"


async def test_charged_exits_of_two_tenants_one_subject_id_with_and_without_alerts(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two tenants with the same subject ids, half of the subjects rich (no alert) and half
    poor (an alert): every close settles its charge in its write, each from its own tenant's
    subject's balance; each session has exactly one charge entry of its own, and an alert
    exactly when its own balance went negative, naming its own session and subject."""
    on_postgresql(storage_url)
    groups = Groups(monkeypatch)
    other = await add_tenant(storage, "other")
    plan = {f"learner-{n}": RICH if n % 2 else POOR for n in range(12)}
    flipped = {s: RICH + POOR - b for s, b in plan.items()}
    sessions = [
        *await subjects_with(storage, tenant, plan),
        *await subjects_with(storage, other, flipped),
    ]
    grant_of: dict[tuple[str, str | None], int] = {
        **{(tenant.id, s): b for s, b in plan.items()},
        **{(other.id, s): b for s, b in flipped.items()},
    }

    closed = await closed_at_once(storage, sessions)

    assert groups.largest > 1, groups.sent
    assert any(len({s.tenant_id for s in group}) > 1 for group in groups.sent), groups.sent
    for group in groups.sent:
        keys = [(s.tenant_id, s.subject_id) for s in group]
        assert len(keys) == len(set(keys))
    alerts = {t: await alerts_of(storage, t) for t in (tenant.id, other.id)}
    for session, (written, _) in zip(sessions, closed, strict=True):
        balance = grant_of[(session.tenant_id, session.subject_id)]
        assert written.charge_state is ChargeState.CHARGED
        assert (written.charge.credits, written.charge.balance_after) == (PRICE, balance - PRICE)
        stored = await storage.sessions.get(session.tenant_id, session.id)
        assert (stored.charge.credits, stored.charge.balance_after) == (PRICE, balance - PRICE)
        charges = await charges_of(storage, session)
        assert [(e.session_id, e.amount) for e in charges] == [(session.id, -PRICE)]
        mine = [a for a in alerts[session.tenant_id] if a.session_id == session.id]
        assert [a.subject_id for a in mine] == ([session.subject_id] if balance == POOR else [])
        balance_now = (await storage.ledger.balance(session.tenant_id, session.subject_id)).balance
        assert balance_now == balance - PRICE
    for tenant_id in (tenant.id, other.id):
        assert len(alerts[tenant_id]) == 6


async def test_a_member_failing_its_balance_guard_in_a_group_writes_none_of_its_records(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a group of charged exits with alerts, one member's subject is granted between the
    read and the group's write: that member's close is left pending with no entry and no
    alert; every other member (those after it too: the ordinal join) is charged with its own
    entry and alert only. Its settlement then charges it once, from the balance with the grant."""
    on_postgresql(storage_url)
    missed: list[Session] = []

    async def grant_to_the_second(members: list[Session]) -> None:
        if len(members) >= 3 and not missed:
            missed.append(members[1])
            subject = members[1].subject_id
            assert subject is not None
            await storage.ledger.grant(a_grant(tenant, 50, "in between", subject))

    groups = Groups(monkeypatch, grant_to_the_second)
    sessions = await subjects_with(storage, tenant, {f"learner-{n}": POOR for n in range(16)})

    closed = await closed_at_once(storage, sessions)

    assert missed, groups.sent
    alerts = await alerts_of(storage, tenant.id)
    for session, (written, closing) in zip(sessions, closed, strict=True):
        charges = await charges_of(storage, session)
        mine = [a for a in alerts if a.session_id == session.id]
        if session.id == missed[0].id:
            assert (written.charge_state, written.charge) == (ChargeState.PENDING, None)
            assert (charges, mine) == ([], [])
            deduct_credits = wired(storage, FakeClock(at(60))).use_cases().deduct_credits()
            deduct_credits.charged_in_close(written, closing)
            settled = await deduct_credits(written)
            assert after(settled) == POOR + 50 - PRICE
            assert [e.session_id for e in await charges_of(storage, session)] == [session.id]
            assert not [
                a for a in await alerts_of(storage, tenant.id) if a.session_id == session.id
            ]
        else:
            assert written.charge_state is ChargeState.CHARGED
            assert written.charge.balance_after == POOR - PRICE
            assert [(e.session_id, e.amount) for e in charges] == [(session.id, -PRICE)]
            assert [a.subject_id for a in mine] == [session.subject_id]


async def test_a_held_ledger_leaves_its_members_charge_pending_and_the_others_charged(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An erasure holds one subject's ledger lock (a transaction of its own) while charged
    exits of many subjects are written in groups: the held subject's close is written pending,
    no entry; every other is charged in its write, and none waits for the held lock."""
    on_postgresql(storage_url)
    groups = Groups(monkeypatch)
    sessions = await subjects_with(storage, tenant, {f"learner-{n}": RICH for n in range(12)})
    held_subject = sessions[5].subject_id
    assert held_subject is not None

    async with held(storage_url, HOLD_LEDGER, ledger_key(tenant.id, held_subject)):
        closed = await closed_at_once(storage, sessions)

    assert groups.largest > 1, groups.sent
    for session, (written, _) in zip(sessions, closed, strict=True):
        stored = await storage.sessions.get(tenant.id, session.id)
        charges = await charges_of(storage, session)
        assert stored.ended_at is not None
        if session.subject_id == held_subject:
            assert (written.charge_state, stored.charge_state) == (ChargeState.PENDING,) * 2
            assert charges == []
        else:
            assert (written.charge_state, stored.charge_state) == (ChargeState.CHARGED,) * 2
            assert [(e.session_id, e.amount) for e in charges] == [(session.id, -PRICE)]


async def test_a_member_another_writer_holds_writes_no_records_and_holds_up_no_other(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One session's row is held by another writer while charged exits of many subjects are
    grouped: every other member is charged at once with its own entry; the held one gets no
    entry from the group (its close then waits the locked way and is left pending), and once
    let go it is closed, never charged twice."""
    on_postgresql(storage_url)
    groups = Groups(monkeypatch)
    sessions = await subjects_with(storage, tenant, {f"learner-{n}": RICH for n in range(12)})
    locked = sessions[4]

    async with held(storage_url, "SELECT FROM sessions WHERE id = $1 FOR UPDATE", locked.id):
        others = [s for s in sessions if s is not locked]
        waiting = asyncio.ensure_future(charged_close(storage, locked))
        closed = await closed_at_once(storage, others)
        await asyncio.sleep(0.3)
        assert not waiting.done()
        assert await charges_of(storage, locked) == []
    written, _ = await asyncio.wait_for(waiting, 30)

    assert groups.largest > 1, groups.sent
    for session, (other, _) in zip(others, closed, strict=True):
        assert other.charge_state is ChargeState.CHARGED
        charges = await charges_of(storage, session)
        assert [(e.session_id, e.amount) for e in charges] == [(session.id, -PRICE)]
    stored = await storage.sessions.get(tenant.id, locked.id)
    assert stored.ended_at is not None
    assert written.charge_state is stored.charge_state
    assert len(await charges_of(storage, locked)) == (
        1 if stored.charge_state is ChargeState.CHARGED else 0
    )


async def test_charged_exits_with_and_without_a_subject_at_once(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rated sessions without a subject closed at once with charged ones: those are written
    without a charge (nothing to settle, no entry, never in a settling group), the others each
    charged once."""
    on_postgresql(storage_url)
    groups = Groups(monkeypatch)
    charged = await subjects_with(storage, tenant, {f"learner-{n}": RICH for n in range(8)})
    anonymous = [
        await stored_session(
            storage, tenant, kind="counseling", subject_id=None, client_key=f"kiosk-{n}"
        )
        for n in range(8)
    ]
    sessions = [s for pair in zip(charged, anonymous, strict=True) for s in pair]

    closed = await closed_at_once(storage, sessions)

    assert all(s.subject_id is not None for group in groups.sent for s in group)
    for session, (written, _) in zip(sessions, closed, strict=True):
        stored = await storage.sessions.get(tenant.id, session.id)
        assert stored.ended_at is not None
        if session.subject_id is None:
            assert stored.charge is None
        else:
            assert (written.charge_state, stored.charge.credits) == (ChargeState.CHARGED, PRICE)
            charges = await charges_of(storage, session)
            assert [e.session_id for e in charges] == [session.id]


async def test_many_exits_of_few_subjects_at_once_each_charged_once_from_the_balance_left(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three sessions each of six subjects, some poor, ended at once through RecordExit: no
    group holds two of one subject; every session is charged exactly once; each subject's
    balances after are its grant less 5, 10, 15 in some order; each subject's alerts are those
    of its charges that left its balance negative, one each."""
    on_postgresql(storage_url)
    groups = Groups(monkeypatch)
    await storage.rates.put(tenant.id, COUNSELING)
    grants = {f"learner-{n}": (RICH if n % 2 else 12) for n in range(6)}
    sessions = []
    for subject, amount in grants.items():
        await storage.ledger.grant(a_grant(tenant, amount, f"welcome-{subject}", subject))
        for _ in range(3):
            sessions.append(
                await stored_session(storage, tenant, kind="counseling", subject_id=subject)
            )
    record_exit = wired(storage, FakeClock(at(60))).use_cases().record_exit()
    exited = await asyncio.wait_for(
        asyncio.gather(
            *(record_exit(RecordExitCommand(tenant.id, s.id, at=at(2.5))) for s in sessions)
        ),
        60,
    )

    for group in groups.sent:
        keys = [(s.tenant_id, s.subject_id) for s in group]
        assert len(keys) == len(set(keys))
    alerts = await alerts_of(storage, tenant.id)
    for subject, amount in grants.items():
        mine = [e for e in exited if e.session.subject_id == subject]
        left = sorted((after(e.session) for e in mine), reverse=True)
        assert left == [amount - PRICE, amount - 2 * PRICE, amount - 3 * PRICE]
        entries = await storage.ledger.entries(tenant.id, subject, limit=50)
        charged = sorted(e.session_id for e in entries if e.kind is EntryKind.CHARGE)
        assert charged == sorted(e.session.id for e in mine)
        negative = sorted(e.session.id for e in mine if after(e.session) < 0)
        assert sorted(a.session_id for a in alerts if a.subject_id == subject) == negative


def entry_by_hand(amount: int, kind: str, reason: str) -> str:
    """A ledger entry written by hand: $1 its id and idempotency key, $2 its tenant, $3 its
    subject."""
    return (
        "INSERT INTO ledger_entries (id, tenant_id, subject_id, amount, kind, reason,"
        f" idempotency_key, created_at) VALUES ($1, $2, $3, {amount}, '{kind}', '{reason}', $1,"
        " now())"
    )


GRANT_IN_FLIGHT = entry_by_hand(50, "grant", "top-up")


async def test_a_grant_in_flight_for_one_member_holds_up_no_other_member(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grant to one subject is being written (its transaction, which keeps the subject's
    ledger_balances row, not yet committed) while charged exits of many subjects are grouped:
    no close waits for that transaction (no member may hold up the others: a group skips what
    another writer holds, statement_groups). The granted subject's member is skipped as a held
    ledger is (migration 0036): its close written pending, its charge left to its settlement.

    Before 0036 all twelve closes, sent as one group, waited until the grant's transaction
    ended, in the balances trigger of the group's ledger entries."""
    on_postgresql(storage_url)
    groups = Groups(monkeypatch)
    sessions = await subjects_with(storage, tenant, {f"learner-{n}": RICH for n in range(12)})
    granted = sessions[3]

    async with held(storage_url, GRANT_IN_FLIGHT, "g-1", tenant.id, granted.subject_id):
        closes = [asyncio.ensure_future(charged_close(storage, s)) for s in sessions]
        await asyncio.wait(closes, timeout=3)
        waiting = [s.subject_id for s, c in zip(sessions, closes, strict=True) if not c.done()]
    written = [w for w, _ in await asyncio.wait_for(asyncio.gather(*closes), 30)]

    assert groups.largest > 1, groups.sent
    assert waiting == []
    pending = [w.subject_id for w in written if w.charge_state is ChargeState.PENDING]
    assert pending == [granted.subject_id]


async def test_a_charge_written_while_a_grant_commits_is_serialised_before_or_after_it(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Risk checked (holds as a serialisation): a charged exit whose subject's grant is in
    flight when its write reads the balance. The grant reads nothing, so a charge from the
    balance before it (the charge first, then the grant) is a valid order: balance_after is
    the balance before the grant less the price, or with it; the ledger holds both, once."""
    on_postgresql(storage_url)
    Groups(monkeypatch)
    (session,) = await subjects_with(storage, tenant, {"learner-0": RICH})

    async with held(
        storage_url, GRANT_IN_FLIGHT, "g-1", tenant.id, session.subject_id, commit=True
    ):
        close = asyncio.ensure_future(charged_close(storage, session))
        await asyncio.wait({close}, timeout=1)
    written, closing = await asyncio.wait_for(close, 30)

    if written.charge_state is ChargeState.PENDING:
        deduct_credits = wired(storage, FakeClock(at(60))).use_cases().deduct_credits()
        deduct_credits.charged_in_close(written, closing)
        written = await deduct_credits(written)
    balance = (await storage.ledger.balance(tenant.id, session.subject_id)).balance
    assert balance == RICH + 50 - PRICE
    assert after(written) in (RICH - PRICE, RICH + 50 - PRICE)
    assert [e.session_id for e in await charges_of(storage, session)] == [session.id]


FREE = Rate("counseling", 0, Rounding.CEIL, {})
FREE_CHARGE = ChargeOnClose({FREE.kind: FREE}, at(60))
SPENT = entry_by_hand(-15, "adjustment", "spent")


async def test_free_closes_grouped_one_subject_gone_negative_since_its_read_alerts_alone(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closes charging 0 credits (no records at all) grouped; one member's subject goes from 10
    to -5 between the read and the group's write: that member's charge is not the Charge(0, 10)
    it read but, settled after, Charge(0, -5, negative_balance) with its one alert; every other
    member is Charge(0, 10, None) with no entry and no alert."""
    on_postgresql(storage_url)
    moved: list[Session] = []

    async def spent_by_the_second(members: list[Session]) -> None:
        if len(members) >= 3 and not moved:
            moved.append(members[1])
            connection = await asyncpg.connect(storage_url)
            try:
                await connection.execute(SPENT, "spent-1", tenant.id, members[1].subject_id)
            finally:
                await connection.close()

    groups = Groups(monkeypatch, spent_by_the_second)
    sessions = await subjects_with(storage, tenant, {f"learner-{n}": 10 for n in range(12)})
    await storage.rates.put(tenant.id, FREE)

    closed = await asyncio.wait_for(
        asyncio.gather(
            *(
                storage.sessions.close(
                    tenant.id,
                    s.id,
                    exit_at(2.5),
                    FREE_CHARGE.rated_kinds,
                    NOW,
                    OPEN,
                    charge=FREE_CHARGE,
                )
                for s in sessions
            )
        ),
        60,
    )

    assert moved, groups.sent
    alerts = await alerts_of(storage, tenant.id)
    for session, (written, closing) in zip(sessions, closed, strict=True):
        assert await charges_of(storage, session) == []
        if session.id == moved[0].id:
            assert written.charge_state is ChargeState.PENDING
            deduct_credits = wired(storage, FakeClock(at(60))).use_cases().deduct_credits()
            deduct_credits.charged_in_close(written, closing)
            written = await deduct_credits(written)
            assert written.charge == Charge(0, -5, NEGATIVE_BALANCE)
            alerts = await alerts_of(storage, tenant.id)
            assert [a.subject_id for a in alerts if a.session_id == session.id] == [
                session.subject_id
            ]
        else:
            assert written.charge == Charge(0, 10, None)
            assert not [a for a in alerts if a.session_id == session.id]
        stored = await storage.sessions.get(tenant.id, session.id)
        assert stored.charge == written.charge


async def test_charged_exits_of_subjects_with_no_ledger_at_all_each_alert_once(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subjects never granted anything (no ledger_balances row): their grouped charged exits
    each charge 5 from 0, leaving -5 with one alert each, and each subject's balance is -5."""
    on_postgresql(storage_url)
    groups = Groups(monkeypatch)
    await storage.rates.put(tenant.id, COUNSELING)
    sessions = [
        await stored_session(storage, tenant, kind="counseling", subject_id=f"new-{n}")
        for n in range(10)
    ]

    closed = await closed_at_once(storage, sessions)

    assert groups.largest > 1, groups.sent
    alerts = await alerts_of(storage, tenant.id)
    for session, (written, _) in zip(sessions, closed, strict=True):
        assert written.charge == Charge(PRICE, -PRICE, NEGATIVE_BALANCE)
        charges = await charges_of(storage, session)
        assert [(e.session_id, e.amount) for e in charges] == [(session.id, -PRICE)]
        assert [a.subject_id for a in alerts if a.session_id == session.id] == [session.subject_id]
        assert (await storage.ledger.balance(tenant.id, session.subject_id)).balance == -PRICE
