"""Credits: how a session is priced, grants once per key, a charge once per session, and the
overdraft policies."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters.memory.storage import MemoryStorage
from application.credits.deduct_credits import DeductCredits
from application.credits.get_balance import GetBalanceQuery
from application.credits.grant_credits import GrantCredits, GrantCreditsCommand
from application.credits.list_alerts import ListAlertsQuery
from application.credits.list_ledger import ListLedgerQuery
from application.credits.ports import LedgerHeld
from application.credits.rate_book import RateBook
from application.credits.set_rate import SetRateCommand
from application.sessions.record_exit import RecordExit, RecordExitCommand
from domain.charging import settle
from domain.clock import EARLIEST, LATEST
from domain.credits import (
    MAX_CREDITS_PER_MINUTE,
    MAX_CREDITS_PER_UNIT,
    MAX_METER_RATES,
    EntryKind,
    MeterRate,
    Rate,
    Rounding,
)
from domain.errors import Conflict, InsufficientCredits, InvalidInput
from domain.session import Charge, ChargeState, Exit, Session, SessionRequest
from domain.tenants import Tenant
from domain.usage import MAX_QUANTITY
from entrypoints.container.use_cases import UseCaseContainer
from tests.fakes import FakeClock, FakeTally
from tests.unit.conftest import Starter, TenantMaker

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def ended(seconds: float, **usage: int | Decimal) -> Session:
    session = Session.start("t", "s", SessionRequest("counseling", "room", "u1"), NOW)
    session.close(Exit(at=NOW + timedelta(seconds=seconds), usage=usage))
    return session


@pytest.mark.parametrize(("rounding", "credits"), [("ceil", 2), ("floor", 1), ("nearest", 2)])
def test_minutes_are_rounded_as_the_rate_says(rounding: str, credits: int) -> None:
    rate = Rate("counseling", credits_per_minute=1, rounding=Rounding(rounding))
    assert rate.price(ended(90)) == credits


def test_meters_are_priced_per_unit_and_added_to_the_minutes() -> None:
    rate = Rate(
        "counseling",
        credits_per_minute=2,
        meter_rates={
            "tokens": MeterRate(per=Decimal(1000), credits=1),
            "cost_usd": MeterRate(per=Decimal("0.01"), credits=1),
        },
    )
    session = ended(120, tokens=2500, cost_usd=Decimal("0.1") + Decimal("0.2"))
    assert rate.price(session) == 2 * 2 + 3 + 30


def test_a_free_rate_charges_nothing() -> None:
    assert Rate("counseling", credits_per_minute=0).price(ended(3600)) == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "Counseling"}, "kind"),
        ({"credits_per_minute": -1}, "credits_per_minute"),
        ({"rounding": "up"}, "rounding"),
        ({"meter_rates": {"Tokens": MeterRate(Decimal(1), 1)}}, "meter_rates.Tokens"),
        ({"meter_rates": {"tokens": MeterRate(Decimal(0), 1)}}, "meter_rates.tokens.per"),
        ({"meter_rates": {"tokens": MeterRate(Decimal(1), -1)}}, "meter_rates.tokens.credits"),
        ({"credits_per_minute": 10**6 + 1}, "credits_per_minute"),
        ({"meter_rates": {"tokens": MeterRate(Decimal("NaN"), 1)}}, "meter_rates.tokens.per"),
        ({"meter_rates": {"tokens": MeterRate(Decimal(10**9 + 1), 1)}}, "meter_rates.tokens.per"),
        ({"meter_rates": {"tokens": MeterRate(Decimal("1e-10"), 0)}}, "meter_rates.tokens.per"),
        (
            {"meter_rates": {"tokens": MeterRate(Decimal(10**3), 10**6 + 1)}},
            "meter_rates.tokens.credits",
        ),
        (
            {"meter_rates": {"tokens": MeterRate(Decimal("0.01"), 101)}},
            "meter_rates.tokens.credits",
        ),
        ({"meter_rates": {f"m{n}": MeterRate(Decimal(1), 1) for n in range(33)}}, "meter_rates"),
    ],
    ids=repr,
)
def test_a_rate_that_breaks_a_rule_names_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        Rate(**{"kind": "counseling", "credits_per_minute": 1, **fields})
    assert refused.value.field == field


def test_no_session_costs_10_to_the_15_credits_however_long_it_lasts_and_whatever_it_used() -> None:
    meters = {f"m{n}": MeterRate(Decimal(1), MAX_CREDITS_PER_UNIT) for n in range(MAX_METER_RATES)}
    rate = Rate("counseling", MAX_CREDITS_PER_MINUTE, Rounding.CEIL, meters)
    session = ended(0, **{meter: MAX_QUANTITY - Decimal("1e-9") for meter in meters})
    session.started_at, session.ended_at = EARLIEST, LATEST

    assert rate.price(session) < 10**15


@pytest.mark.parametrize(
    ("balance_before", "warning", "alert"),
    [
        (6, None, None),
        (5, "negative_balance", "charging 6 credits left a balance of -1"),
    ],
)
def test_a_first_charge_is_warned_and_alerted_only_when_it_leaves_the_balance_below_zero(
    balance_before: int, warning: str | None, alert: str | None
) -> None:
    settled = settle(ended(180), credits=6, balance_before=balance_before)

    assert (settled.kind, settled.amount, settled.reason) == (
        EntryKind.CHARGE,
        -6,
        "counseling session",
    )
    assert settled.charge == Charge(6, balance_before - 6, warning)
    assert settled.alert == alert


@pytest.fixture
def grant(use_cases: UseCaseContainer) -> GrantCredits:
    return use_cases.grant_credits()


def grant_of(
    tenant_id: str, amount: int = 100, key: str = "welcome-u1", **fields: Any
) -> GrantCreditsCommand:
    return GrantCreditsCommand(tenant_id, "u1", amount, "welcome", key, **fields)


async def test_a_grant_is_recorded_once_per_idempotency_key(
    grant: GrantCredits, use_cases: UseCaseContainer, tenant: Tenant
) -> None:
    first = await grant(grant_of(tenant.id))
    again = await grant(grant_of(tenant.id))

    assert first.created and not again.created and again.entry == first.entry
    assert first.entry.kind is EntryKind.GRANT
    assert (await use_cases.get_balance()(GetBalanceQuery(tenant.id, "u1"))).balance == 100


async def test_a_key_reused_for_another_grant_is_a_conflict(
    grant: GrantCredits, tenant: Tenant
) -> None:
    await grant(grant_of(tenant.id))
    with pytest.raises(Conflict):
        await grant(grant_of(tenant.id, amount=200))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"key": ""}, "idempotency_key"),
        ({"expires_at": datetime(2027, 1, 1)}, "expires_at"),
    ],
    ids=repr,
)
async def test_a_grant_that_breaks_a_rule_names_the_field(
    grant: GrantCredits, tenant: Tenant, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await grant(grant_of(tenant.id, **fields))
    assert refused.value.field == field


@pytest.fixture
async def rated(use_cases: UseCaseContainer, tenant: Tenant) -> Rate:
    rate = Rate("counseling", credits_per_minute=10)
    return await use_cases.set_rate()(SetRateCommand(tenant.id, rate))


async def test_a_session_is_charged_once_however_often_it_exits(
    start: Starter,
    record_exit: RecordExit,
    grant: GrantCredits,
    use_cases: UseCaseContainer,
    clock: FakeClock,
    tenant: Tenant,
    rated: Rate,
) -> None:
    await grant(grant_of(tenant.id))
    session = await start(kind="counseling")
    clock.advance(150)

    first = await record_exit(RecordExitCommand(tenant.id, session.id))
    again = await record_exit(RecordExitCommand(tenant.id, session.id))

    assert first.session.charge == again.session.charge
    assert first.session.charge is not None
    assert (first.session.charge.credits, first.session.charge.balance_after) == (25, 75)
    ledger = await use_cases.list_ledger()(ListLedgerQuery(tenant.id, "u1"))
    assert [(e.kind, e.amount, e.session_id) for e in ledger.items] == [
        (EntryKind.GRANT, 100, None),
        (EntryKind.CHARGE, -25, session.id),
    ]
    balance = await use_cases.get_balance()(GetBalanceQuery(tenant.id, "u1"))
    assert (balance.granted, balance.consumed, balance.balance) == (100, 25, 75)


@pytest.mark.parametrize("status", ["cancelled", "failed"])
async def test_cancelled_and_failed_sessions_are_never_charged(
    start: Starter,
    record_exit: RecordExit,
    clock: FakeClock,
    tenant: Tenant,
    rated: Rate,
    status: str,
) -> None:
    session = await start(kind="counseling")
    clock.advance(600)
    recorded = await record_exit(RecordExitCommand(tenant.id, session.id, status=status))
    assert recorded.session.charge_state is ChargeState.NOT_CHARGED


async def test_a_kind_without_a_rate_is_not_charged(
    start: Starter, record_exit: RecordExit, clock: FakeClock, tenant: Tenant, rated: Rate
) -> None:
    session = await start(kind="webinar")
    clock.advance(600)
    recorded = await record_exit(RecordExitCommand(tenant.id, session.id))
    assert recorded.session.charge_state is ChargeState.NOT_CHARGED


async def test_a_soft_overdraft_charges_below_zero_with_a_warning_and_an_alert(
    start: Starter,
    record_exit: RecordExit,
    use_cases: UseCaseContainer,
    clock: FakeClock,
    tenant: Tenant,
    rated: Rate,
) -> None:
    session = await start(kind="counseling")
    clock.advance(60)

    charge = (await record_exit(RecordExitCommand(tenant.id, session.id))).session.charge

    assert charge is not None and (charge.balance_after, charge.warning) == (
        -10,
        "negative_balance",
    )
    alerts = await use_cases.list_alerts()(ListAlertsQuery(tenant.id))
    assert [(a.kind, a.subject_id, a.session_id) for a in alerts.items] == [
        ("negative_balance", "u1", session.id)
    ]


async def test_a_new_rate_applies_to_the_next_exit_at_once(
    start: Starter,
    record_exit: RecordExit,
    rate_book: RateBook,
    use_cases: UseCaseContainer,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    session = await start(kind="counseling")
    await rate_book.rates(tenant.id)  # remembered: no rate for counseling yet
    await use_cases.set_rate()(SetRateCommand(tenant.id, Rate("counseling", credits_per_minute=1)))
    clock.advance(60)

    recorded = await record_exit(RecordExitCommand(tenant.id, session.id))

    assert recorded.session.charge is not None and recorded.session.charge.credits == 1


async def test_a_hard_overdraft_refuses_a_rated_start_below_the_minimum(
    start: Starter,
    make_tenant: TenantMaker,
    storage: MemoryStorage,
    grant: GrantCredits,
) -> None:
    strict = await make_tenant("strict", overdraft="hard", min_start_credits=50)
    await storage.rates.put(strict.id, Rate("counseling", credits_per_minute=10))

    with pytest.raises(InsufficientCredits) as refused:
        await start(tenant=strict, kind="counseling")
    assert (refused.value.balance, refused.value.required) == (0, 50)

    await start(tenant=strict, kind="webinar")  # not rated
    await start(tenant=strict, kind="counseling", subject_id=None, client_key="tab")  # anonymous
    await grant(grant_of(strict.id, amount=50))
    await start(tenant=strict, kind="counseling")


class HeldLedger:
    """A ledger whose subjects' ledgers an erasure holds: every settlement waited its while and
    raises LedgerHeld; the batch leaves every session out."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.settlements: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def settle(self, tenant_id: str, session_id: str, *args: Any) -> Any:
        self.settlements.append(session_id)
        raise LedgerHeld("u1")

    async def settle_many(self, *args: Any) -> dict[str, Charge]:
        return {}


def pending(session_id: str, minutes: int) -> Session:
    """A counseling session of u1 ended after `minutes`, pending its charge."""
    session = Session.start("t", session_id, SessionRequest("counseling", "room", "u1"), NOW)
    session.close(Exit(at=NOW + timedelta(minutes=minutes)), frozenset({"counseling"}))
    return session


async def held(sessions: list[Session], clock: FakeClock) -> tuple[DeductCredits, HeldLedger]:
    storage = MemoryStorage()
    await storage.rates.put("t", Rate("counseling", 2))
    for session in sessions:
        await storage.sessions.add(session.copy())
    ledger = HeldLedger(storage.ledger)
    deduct = DeductCredits(
        RateBook(storage.rates, clock), ledger, storage.erasure, clock, FakeTally()
    )
    return deduct, ledger


async def test_the_tally_hears_of_each_first_charge_once_from_the_settlement_that_wrote_it(
    clock: FakeClock,
) -> None:
    """The `sessionmeter_credits_charged` metric is the tally: a caller whose copy another caller
    settled first (an exit and the reaper, two reapers) tells it nothing, so each first charge
    is counted once."""
    storage = MemoryStorage()
    await storage.rates.put("t", Rate("counseling", 2))
    s1, s2 = pending("s1", 3), pending("s2", 4)
    for session in (s1, s2):
        await storage.sessions.add(session.copy())
    tally = FakeTally()
    deduct = DeductCredits(
        RateBook(storage.rates, clock), storage.ledger, storage.erasure, clock, tally
    )

    first = await deduct(s1.copy())
    again = await deduct(s1.copy())  # read before the first settled it
    batch = await deduct.settle_many([s1.copy(), s2.copy()])

    assert [s.charge_state for s in (first, again, *batch)] == [ChargeState.CHARGED] * 4
    assert tally.told == [6, 8]


async def test_a_charge_whose_ledger_is_held_is_left_pending_for_the_reaper_at_once(
    clock: FakeClock,
) -> None:
    session = pending("s1", 3)
    deduct, ledger = await held([session], clock)

    settled = await deduct(session)

    # Not read again and waited for again, ATTEMPTS times: one wait, then the reaper's.
    assert settled.charge_state is ChargeState.PENDING
    assert ledger.settlements == ["s1"]


async def test_the_reapers_batch_leaves_a_held_subjects_other_sessions_for_its_next_run(
    clock: FakeClock,
) -> None:
    sessions = [pending(f"s{n}", n) for n in (1, 2, 3)]
    deduct, ledger = await held(sessions, clock)

    settled = await deduct.settle_many(sessions)

    assert [s.charge_state for s in settled] == [ChargeState.PENDING] * 3
    assert ledger.settlements == ["s1"]


async def test_sessions_of_an_unfinished_erasures_pseudonym_are_left_for_after_its_retry(
    clock: FakeClock,
) -> None:
    """An erasure of u2 failed midway: its sessions carry the pseudonym, its ledger is still
    under u2. Neither a settlement nor the reaper's batch charges them meanwhile; u1's are."""
    storage = MemoryStorage()
    await storage.rates.put("t", Rate("counseling", 2))
    await storage.erasure.pseudonym_for("t", "u2", "erased:x", NOW)
    erased = [pending(f"e{n}", 3) for n in (1, 2)]
    for session in erased:
        session.subject_id = "erased:x"
    batch = [pending("s1", 3), erased[0], pending("s2", 4)]
    for session in [*batch, erased[1]]:
        await storage.sessions.add(session.copy())
    deduct = DeductCredits(
        RateBook(storage.rates, clock), storage.ledger, storage.erasure, clock, FakeTally()
    )

    settled = await deduct.settle_many(batch)
    alone = await deduct(erased[1])

    assert [s.charge_state for s in settled] == [
        ChargeState.CHARGED,
        ChargeState.PENDING,
        ChargeState.CHARGED,
    ]
    assert alone.charge_state is ChargeState.PENDING
    assert (await storage.ledger.balance("t", "erased:x")).consumed == 0

    await storage.erasure.finished("t", "u2", "erased:x")
    assert (await deduct(alone)).charge_state is ChargeState.CHARGED
