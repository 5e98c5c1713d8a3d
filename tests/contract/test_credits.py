"""Rates and the CreditLedger contract: each session charged at most once, the balance always
the sum of the ledger, grants once per key — with concurrent callers, on every backend."""

from decimal import Decimal
from typing import Any

import pytest

from application.pagination import Position
from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from application.sessions.record_exit import RecordExitCommand
from domain.credits import Balance, EntryKind, MeterRate, Rate, Rounding
from domain.events import Event
from domain.session import Charge, ChargeState, Exit, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import (
    NOW,
    OPEN,
    SHUT,
    ChargesApart,
    a_grant,
    at,
    stored_session,
    wired,
)
from tests.contract.races import Call, Race
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

COUNSELING = Rate("counseling", 2, Rounding.CEIL, {"analysis": MeterRate(Decimal("1"), 3)})


async def ledger_sum(storage: Any, tenant: Tenant, subject: str = "user-1") -> int:
    entries = await storage.ledger.entries(tenant.id, subject, limit=500)
    return sum(e.amount for e in entries)


async def test_rates_are_stored_per_kind_and_replaced(storage: Any, tenant: Tenant) -> None:
    await storage.rates.put(tenant.id, Rate("webinar", 1))
    await storage.rates.put(tenant.id, COUNSELING)
    await storage.rates.put(tenant.id, Rate("webinar", 5, Rounding.FLOOR))

    assert await storage.rates.all(tenant.id) == [COUNSELING, Rate("webinar", 5, Rounding.FLOOR)]


async def test_a_grant_is_recorded_once_per_key_even_concurrently(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    results = await race(*[lambda s: s.ledger.grant(a_grant(tenant, 100, "welcome"))] * 8)

    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert len({entry.id for entry, _ in results}) == 1
    balance = await storage.ledger.balance(tenant.id, "user-1")
    assert (balance.granted, balance.consumed, balance.balance) == (100, 0, 100)


async def test_twelve_concurrent_exits_charge_the_session_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    await storage.rates.put(tenant.id, COUNSELING)
    await storage.ledger.grant(a_grant(tenant, 100, "welcome"))
    session = await stored_session(storage, tenant, kind="counseling")
    clock = FakeClock(at(60))

    async def exit_and_charge(storage: Any) -> Any:
        deduct = wired(storage, clock).use_cases().deduct_credits()
        rated = frozenset({COUNSELING.kind})
        closed, _ = await storage.sessions.close(
            tenant.id, session.id, Exit(at=at(2.5), usage={"analysis": 4}), rated, NOW, SHUT
        )
        return await deduct(closed)

    settled = await race(*[exit_and_charge] * 12)

    # 2.5 minutes x 2 = 5, plus 4 analyses x 3 = 12: 17 credits, once.
    assert {s.charge.credits for s in settled if s.charge} == {17}
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.charge_state is ChargeState.CHARGED
    assert (stored.charge.credits, stored.charge.balance_after) == (17, 83)
    entries = await storage.ledger.entries(tenant.id, "user-1", limit=10)
    assert [(e.kind, e.amount, e.session_id) for e in entries if e.kind is EntryKind.CHARGE] == [
        (EntryKind.CHARGE, -17, session.id)
    ]
    assert (
        (await storage.ledger.balance(tenant.id, "user-1")).balance
        == await ledger_sum(storage, tenant)
        == 83
    )


async def test_concurrent_settlements_of_one_session_write_one_entry(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    session = await stored_session(storage, tenant, kind="counseling")
    await storage.sessions.close(
        tenant.id, session.id, Exit(at=at(3)), frozenset({"counseling"}), NOW, SHUT
    )

    charges = await race(*[lambda s: s.ledger.settle(tenant.id, session.id, 0, 6, at(10))] * 8)

    assert [c for c in charges if c is not None] == [Charge(6, -6, "negative_balance")]
    assert await ledger_sum(storage, tenant) == -6


async def test_a_charge_below_zero_warns_and_alerts(storage: Any, tenant: Tenant) -> None:
    session = await stored_session(storage, tenant, kind="counseling")
    await storage.sessions.close(
        tenant.id, session.id, Exit(at=at(3)), frozenset({"counseling"}), NOW, SHUT
    )

    charge = await storage.ledger.settle(tenant.id, session.id, 0, 6, at(10))

    assert charge is not None
    assert (charge.balance_after, charge.warning) == (-6, "negative_balance")
    assert type(charge.balance_after) is int  # a driver's Decimal would reach clients as a string
    assert (await storage.ledger.settled(tenant.id, session.id)).charge == charge
    (alert,) = await storage.ledger.alerts(tenant.id, limit=10)
    assert (alert.kind, alert.subject_id, alert.session_id) == (
        "negative_balance",
        "user-1",
        session.id,
    )
    assert (alert.detail, alert.created_at) == ("charging 6 credits left a balance of -6", at(10))
    (entry,) = await storage.ledger.entries(tenant.id, "user-1", limit=10)
    assert (entry.kind, entry.amount, entry.session_id, entry.created_at, entry.reason) == (
        EntryKind.CHARGE,
        -6,
        session.id,
        at(10),
        "counseling session",
    )


async def test_alerts_read_a_page_at_a_time_newest_first_and_ties_once_each(
    storage: Any, tenant: Tenant
) -> None:
    """Four charges below zero, two of them at one instant: pages of two, each from before the
    last alert read, list every alert once, newest first."""
    for settled_at in (at(10), at(20), at(20), at(30)):
        session = await stored_session(storage, tenant, kind="counseling")
        closed = Exit(at=at(3))
        await storage.sessions.close(
            tenant.id, session.id, closed, frozenset({"counseling"}), NOW, SHUT
        )
        await storage.ledger.settle(tenant.id, session.id, 0, 6, settled_at)
    whole = await storage.ledger.alerts(tenant.id, limit=10)

    pages, before = [], None
    while page := await storage.ledger.alerts(tenant.id, 2, before):
        pages.append(page)
        before = Position(page[-1].created_at, page[-1].id)

    assert [len(p) for p in pages] == [2, 2]
    assert [a for p in pages for a in p] == whole
    assert [a.created_at for a in whole] == [at(30), at(20), at(20), at(10)]


@pytest.mark.parametrize(
    ("granted", "charge", "alert"),
    [
        (7, Charge(6, 1, None), None),
        (6, Charge(6, 0, None), None),
        (5, Charge(6, -1, "negative_balance"), "charging 6 credits left a balance of -1"),
    ],
)
async def test_a_charge_is_warned_and_alerted_only_below_zero(
    storage: Any, tenant: Tenant, granted: int, charge: Charge, alert: str | None
) -> None:
    await storage.ledger.grant(a_grant(tenant, granted, "welcome"))
    session = await stored_session(storage, tenant, kind="counseling")
    rated = frozenset({"counseling"})
    await storage.sessions.close(tenant.id, session.id, Exit(at=at(3)), rated, NOW, SHUT)

    assert await storage.ledger.settle(tenant.id, session.id, 0, 6, at(10)) == charge

    alerts = await storage.ledger.alerts(tenant.id, limit=10)
    assert [(a.kind, a.detail) for a in alerts] == (
        [] if alert is None else [(charge.warning, alert)]
    )


async def test_a_charge_and_its_correction_say_what_they_are_in_the_ledger(
    storage: Any, tenant: Tenant
) -> None:
    # Charged 10 of a balance of 10 (left at zero), then a late analysis makes it 13: the
    # adjustment of 3 takes the balance below zero, which is warned but not alerted again.
    await storage.ledger.grant(a_grant(tenant, 10, "welcome"))
    session = await stored_session(storage, tenant, kind="counseling")
    rated = frozenset({"counseling"})
    await storage.sessions.close(tenant.id, session.id, Exit(at=at(5)), rated, NOW, SHUT)
    assert await storage.ledger.settle(tenant.id, session.id, 0, 10, at(6)) == Charge(10, 0, None)
    late = Event(session.id, 1, "analysis", at(4), meters={"analysis": 1})
    await storage.events.append(tenant.id, [(0, late)], NOW, OPEN)
    revision = (await storage.sessions.get(tenant.id, session.id)).charge_revision

    charge = await storage.ledger.settle(tenant.id, session.id, revision, 13, at(7))

    assert charge == Charge(13, -3, "negative_balance")
    entries = await storage.ledger.entries(tenant.id, "user-1", limit=10)
    assert [(e.kind, e.amount, e.reason, e.session_revision) for e in entries] == [
        (EntryKind.GRANT, 10, "top-up", None),
        (EntryKind.CHARGE, -10, "counseling session", 0),
        (EntryKind.ADJUSTMENT, -3, "counseling session corrected", revision),
    ]
    assert await storage.ledger.alerts(tenant.id, limit=10) == []
    # Granted is what grants gave; consumed, the charges net of their adjustments.
    assert await storage.ledger.balance(tenant.id, "user-1") == Balance("user-1", 10, 13)
    assert await storage.ledger.balance(tenant.id, "nobody") == Balance("nobody", 0, 0)


async def test_a_settlement_of_nothing_writes_no_entry_and_marks_the_session_charged(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant, kind="counseling")
    rated = frozenset({"counseling"})
    await storage.sessions.close(tenant.id, session.id, Exit(at=at(3)), rated, NOW, SHUT)

    charge = await storage.ledger.settle(tenant.id, session.id, 0, 0, at(10))

    assert charge == Charge(0, 0, None)
    assert await storage.ledger.entries(tenant.id, "user-1", limit=10) == []
    assert (await storage.ledger.settled(tenant.id, session.id)).charge_state is ChargeState.CHARGED
    assert await storage.sessions.pending_charges(tenant.id, 10) == []


async def test_a_settlement_claims_only_the_revision_it_priced(
    storage: Any, tenant: Tenant
) -> None:
    # Charged at 10, then an analysis dated before its end arrives (late data is let in): the
    # session is pending again under a new revision. Settling the old revision records nothing;
    # settling the new one records the difference as one adjustment.
    session = await stored_session(storage, tenant, kind="counseling")
    active = await stored_session(storage, tenant, kind="counseling")
    rated = frozenset({"counseling"})
    await storage.sessions.close(tenant.id, session.id, Exit(at=at(5)), rated, NOW, SHUT)
    assert await storage.ledger.settle(tenant.id, session.id, 0, 10, at(6)) is not None

    late = [
        (0, Event(session.id, 1, "analysis", at(4), meters={"analysis": 1})),
        (1, Event(active.id, 1, "analysis", at(4), meters={"analysis": 1})),
    ]
    outcome = await storage.events.append(tenant.id, late, NOW, OPEN)

    assert (outcome.inserted, outcome.repriced) == (2, frozenset({session.id}))
    pending = await storage.sessions.get(tenant.id, session.id)
    assert pending.charge_state is ChargeState.PENDING and pending.charge_revision != 0
    assert [s.id for s in await storage.sessions.pending_charges(tenant.id, 10)] == [session.id]
    assert await storage.ledger.settle(tenant.id, session.id, 0, 13, at(7)) is None
    assert await ledger_sum(storage, tenant) == -10
    charge = await storage.ledger.settle(tenant.id, session.id, pending.charge_revision, 13, at(7))
    assert charge is not None and charge.credits == 13
    entries = await storage.ledger.entries(tenant.id, "user-1", limit=10)
    assert sorted((e.kind, e.amount) for e in entries) == [
        (EntryKind.ADJUSTMENT, -3),
        (EntryKind.CHARGE, -10),
    ]
    assert (
        await storage.ledger.settle(tenant.id, session.id, pending.charge_revision, 13, at(8))
        is None
    )
    assert (await storage.sessions.get(tenant.id, session.id)).charge_state is ChargeState.CHARGED


async def test_cancelled_failed_anonymous_and_unrated_sessions_are_not_charged(
    storage: Any, tenant: Tenant
) -> None:
    rated = frozenset({"counseling"})
    cases = [
        (await stored_session(storage, tenant, kind="counseling"), SessionStatus.CANCELLED),
        (await stored_session(storage, tenant, kind="counseling"), SessionStatus.FAILED),
        (
            await stored_session(
                storage, tenant, kind="counseling", subject_id=None, client_key="b"
            ),
            SessionStatus.COMPLETED,
        ),
        (await stored_session(storage, tenant, kind="webinar"), SessionStatus.COMPLETED),
    ]
    for session, status in cases:
        closed, _ = await storage.sessions.close(
            tenant.id, session.id, Exit(at=at(5), status=status), rated, NOW, SHUT
        )
        assert closed.charge_state is ChargeState.NOT_CHARGED
        assert await storage.ledger.settle(tenant.id, session.id, 0, 10, at(10)) is None
    assert await ledger_sum(storage, tenant) == 0


async def test_sessions_left_pending_are_found_for_settling(storage: Any, tenant: Tenant) -> None:
    pending = await stored_session(storage, tenant, kind="counseling")
    await storage.sessions.close(
        tenant.id, pending.id, Exit(at=at(1)), frozenset({"counseling"}), NOW, SHUT
    )
    settled = await stored_session(storage, tenant, kind="counseling")
    await storage.sessions.close(
        tenant.id, settled.id, Exit(at=at(1)), frozenset({"counseling"}), NOW, SHUT
    )
    await storage.ledger.settle(tenant.id, settled.id, 0, 2, at(10))

    assert [s.id for s in await storage.sessions.pending_charges(tenant.id, 10)] == [pending.id]


async def test_the_ledger_reads_oldest_first_a_page_at_a_time(storage: Any, tenant: Tenant) -> None:
    grants = [a_grant(tenant, n, f"key-{n}") for n in range(1, 6)]
    for grant in grants:
        await storage.ledger.grant(grant)
    expected = [g.id for g in sorted(grants, key=lambda g: (g.created_at, g.id))]

    first = await storage.ledger.entries(tenant.id, "user-1", limit=2)
    after = Position(first[-1].created_at, first[-1].id)
    rest = await storage.ledger.entries(tenant.id, "user-1", limit=10, after=after)

    assert [e.id for e in first + rest] == expected
    assert await storage.ledger.entries(tenant.id, "someone-else", limit=10) == []


class FailsOnce:
    """A ledger whose first settlement fails, as if the process died between closing a session
    and charging it."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    async def settle(
        self, tenant_id: str, session_id: str, revision: int, credits: int, at: Any
    ) -> Any:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the process died here")
        return await self._ledger.settle(tenant_id, session_id, revision, credits, at)


async def test_a_charge_lost_to_a_crash_is_settled_by_the_reaper(
    storage: Any, tenant: Tenant
) -> None:
    await storage.rates.put(tenant.id, COUNSELING)
    session = await stored_session(storage, tenant, kind="counseling")
    flaky = FailsOnce(storage.ledger)
    clock = FakeClock(at(60))
    container = wired(storage, clock, ledger=flaky, sessions=ChargesApart(storage.sessions))
    record_exit = container.use_cases().record_exit()

    with pytest.raises(ConnectionError):
        await record_exit(RecordExitCommand(tenant.id, session.id, at=at(3)))
    assert (await storage.sessions.get(tenant.id, session.id)).charge_state is ChargeState.PENDING

    await container.jobs().reap_stale_sessions()(ReapStaleSessionsCommand())

    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.charge_state is ChargeState.CHARGED and stored.charge.credits == 6
    assert await ledger_sum(storage, tenant) == -6


async def test_the_reaper_and_a_late_client_exit_racing_charge_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    await storage.rates.put(tenant.id, COUNSELING)
    sessions = [await stored_session(storage, tenant, kind="counseling") for _ in range(5)]
    for s in sessions:
        await storage.sessions.heartbeat(tenant.id, s.id, at(3))
    clock = FakeClock(at(60))  # every session has been silent for most of an hour

    async def reap(storage: Any) -> Any:
        reap_stale_sessions = wired(storage, clock).jobs().reap_stale_sessions()
        return await reap_stale_sessions(ReapStaleSessionsCommand())

    def client_exit(session_id: str) -> Call:
        command = RecordExitCommand(tenant.id, session_id, at=at(4))
        return lambda s: wired(s, clock).use_cases().record_exit()(command)

    await race(reap, *(client_exit(s.id) for s in sessions))

    # Whichever came first, the client's exit is where each session ends (it replaces the
    # reaper's guess), and its entries add up to its charge: a charge, maybe one adjustment.
    entries = await storage.ledger.entries(tenant.id, "user-1", limit=50)
    for s in sessions:
        stored = await storage.sessions.get(tenant.id, s.id)
        assert (stored.status, stored.ended_at) == (SessionStatus.COMPLETED, at(4))
        assert stored.charge_state is ChargeState.CHARGED and stored.charge.credits == 8
        mine = [e for e in entries if e.session_id == s.id]
        assert sum(e.amount for e in mine) == -8
        # (Both are dated by the same clock, so their order in the ledger is the ids'.)
        assert sorted(e.kind for e in mine) in (
            [EntryKind.CHARGE],
            [EntryKind.ADJUSTMENT, EntryKind.CHARGE],
        )
