"""Races across the port calls of one use case (an exit and its charge, ingest, the reaper,
starts under a plan, an erasure), each caller on a storage object of its own (`race`), on every
store."""

import asyncio
import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from application.data_rights.erase_subject import EraseSubjectCommand
from application.events.ingest_events import IngestEventsCommand
from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from application.sessions.record_exit import RecordExitCommand
from application.sessions.start_session import StartSessionCommand
from domain.credits import MeterRate, Rate, Rounding
from domain.events import Event
from domain.plans import Plan, PlanLimits, TrialExhausted
from domain.session import ChargeState, Exit, SessionRequest, SessionStatus
from domain.tenants import Tenant
from domain.usage import Usage
from tests.contract.builders import ChargesApart, a_grant, at, stored_session, wired
from tests.contract.races import Call, Proxy, Race, wait_for
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

COUNSELING = Rate("counseling", 2, Rounding.CEIL, {"analysis": MeterRate(Decimal("1"), 3)})


# An erasure of the subject between an exit's close and its settlement

# How long the erasure lets a settlement run between its two steps: one that did not wait for
# the erasure to give the subject's ledger back settles well within it.
BETWEEN_STEPS_SECONDS = 1.0


class SettlesWhenErased(Proxy):
    """The exit's ledger: its settlements wait until the erasure has given the sessions their
    pseudonym (and not yet moved the ledger), then tell the erasure when they are done."""

    def __init__(
        self,
        inner: Any,
        at_settle: threading.Event,
        erased: threading.Event,
        settled: threading.Event,
    ) -> None:
        super().__init__(inner)
        self._at_settle, self._erased, self._settled = at_settle, erased, settled

    async def settle(self, *args: Any) -> Any:
        self._at_settle.set()
        await wait_for(self._erased)
        try:
            return await self._inner.settle(*args)
        finally:
            self._settled.set()


class MovesLedgerAfterSettle(Proxy):
    """The erasure's port: once the sessions are erased, its move of the ledger waits for the
    exit's settlement, `within` seconds at most (one that waits for the erasure never comes)."""

    def __init__(
        self,
        inner: Any,
        erased: threading.Event,
        settled: threading.Event,
        within: float = BETWEEN_STEPS_SECONDS,
    ) -> None:
        super().__init__(inner)
        self._erased, self._settled, self._within = erased, settled, within

    async def erase_sessions(self, *args: Any) -> Any:
        try:
            return await self._inner.erase_sessions(*args)
        finally:
            self._erased.set()

    async def move_subject(self, *args: Any) -> Any:
        await asyncio.to_thread(self._settled.wait, self._within)
        return await self._inner.move_subject(*args)


async def test_a_charge_settled_while_its_subject_is_erased_sees_the_subjects_balance(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """The erasure gives the sessions a pseudonym, then moves the ledger to it. A settlement
    let in between would read the pseudonym's balance, still empty (-6 of 0, a warning and an
    admin's alert), or land under the subject after its ledger moved; it waits for the erasure
    instead, or claims nothing and is settled again after it."""
    await storage.rates.put(tenant.id, COUNSELING)
    await storage.ledger.grant(a_grant(tenant, 100, "g-1", "ana"))
    session = await stored_session(storage, tenant, kind="counseling", subject_id="ana")
    clock = FakeClock(at(60))
    at_settle, erased, settled = threading.Event(), threading.Event(), threading.Event()

    async def leave(s: Any) -> Any:
        ledger = SettlesWhenErased(s.ledger, at_settle, erased, settled)
        apart = ChargesApart(s.sessions)
        record_exit = wired(s, clock, ledger=ledger, sessions=apart).use_cases().record_exit()
        return await record_exit(RecordExitCommand(tenant.id, session.id, at=at(3)))

    async def forget(s: Any) -> Any:
        await wait_for(at_settle)
        erasure = MovesLedgerAfterSettle(s.erasure, erased, settled)
        erase_subject = wired(s, clock, erasure=erasure).use_cases().erase_subject()
        return await erase_subject(EraseSubjectCommand(tenant, "ana"))

    await race(leave, forget)
    await settle_what_is_pending(storage, tenant)  # SQLite's exit leaves it to the reaper

    stored = await storage.sessions.get(tenant.id, session.id)
    pseudonym = stored.subject_id
    assert pseudonym != "ana"
    assert (await storage.ledger.balance(tenant.id, pseudonym)).balance == 94
    assert (await storage.ledger.balance(tenant.id, "ana")).balance == 0
    alerts = await storage.ledger.alerts(tenant.id, limit=10)
    # Erased before or after the exit, the charge leaves 94 of 100, warns nothing, alerts no one.
    assert stored.charge is not None
    assert (stored.charge.balance_after, stored.charge.warning, [a.detail for a in alerts]) == (
        94,
        None,
        [],
    )


CLOCK = FakeClock(at(60))


def exits(tenant: Tenant, session_id: str, minute: float, usage: Usage | None = None) -> Call:
    """A racer: the client's exit of the session at `minute`, with usage."""
    command = RecordExitCommand(tenant.id, session_id, at=at(minute), usage=usage or {})
    return lambda s: wired(s, CLOCK).use_cases().record_exit()(command)


def analyses(tenant: Tenant, session_id: str, *minutes: int) -> Call:
    """A racer: a batch of the session's `analysis` events, numbered and timed by `minutes`."""
    events = [Event(session_id, n, "analysis", at(n), meters={"analysis": 1}) for n in minutes]
    return lambda s: (
        wired(s, CLOCK).use_cases().ingest_events()(IngestEventsCommand(tenant, events))
    )


async def settle_what_is_pending(storage: Any, tenant: Tenant) -> None:
    """What the reaper does for a settlement that lost its claim too often to others."""
    for pending in await storage.sessions.pending_charges(tenant.id, 100):
        await wired(storage, CLOCK).use_cases().deduct_credits()(pending)


async def counseling_of_ana(storage: Any, tenant: Tenant, count: int) -> list[Any]:
    """`count` rated sessions of one subject."""
    await storage.rates.put(tenant.id, COUNSELING)
    return [
        await stored_session(storage, tenant, kind="counseling", subject_id="ana")
        for _ in range(count)
    ]


async def charged_as(storage: Any, tenant: Tenant, sessions: list[Any]) -> list[tuple[Any, ...]]:
    """Each session's status, end, analyses, charge state and credits, and its ledger total."""
    entries = await storage.ledger.entries(tenant.id, "ana", limit=100)
    found = []
    for s in sessions:
        stored = await storage.sessions.get(tenant.id, s.id)
        found.append(
            (
                stored.status,
                stored.ended_at,
                stored.usage.get("analysis"),
                stored.charge_state,
                stored.charge.credits if stored.charge else None,
                sum(e.amount for e in entries if e.session_id == s.id),
            )
        )
    return found


async def test_exits_of_one_subjects_sessions_at_once_each_charge_sees_the_ones_before(
    storage: Any, storage_url: str, tenant: Tenant, race: Race
) -> None:
    """Ten sessions of one subject exit at once, each charged 6 of a balance of 50: as if one
    after the other, the charges leave 44, 38, ..., -4, -10, the last two warned and alerted.
    A settlement reads the balance and then charges: without the subject's claims taking turns
    and holding only on the balance read, several read one balance (before, on PostgreSQL:
    [2, 8, 8, 38, 38, 38, 44, 44, 44, 44] and no alert)."""
    await storage.ledger.grant(a_grant(tenant, 50, "g-1", "ana"))
    sessions = await counseling_of_ana(storage, tenant, 10)

    await race(*(exits(tenant, s.id, 3) for s in sessions))
    await settle_what_is_pending(storage, tenant)

    charges = [(await storage.sessions.get(tenant.id, s.id)).charge for s in sessions]
    assert all(c is not None and c.credits == 6 for c in charges)
    assert (await storage.ledger.balance(tenant.id, "ana")).balance == 50 - 60
    alerts = await storage.ledger.alerts(tenant.id, limit=50)
    assert (
        sorted(c.balance_after for c in charges if c is not None),
        sum(c.warning is not None for c in charges if c is not None),
        len(alerts),
    ) == (sorted(50 - 6 * n for n in range(1, 11)), 2, 2)


async def test_the_reapers_settlements_and_exits_of_one_subject_at_once_each_see_the_others(
    storage: Any, storage_url: str, tenant: Tenant, race: Race
) -> None:
    """The reaper settles five closed sessions of a subject in one batch while five other
    sessions of the subject exit: the batch takes the subject's lock as a single settlement
    does (first, before any session's), so none of them deadlocks and each sees the others."""
    await storage.ledger.grant(a_grant(tenant, 50, "g-1", "ana"))
    sessions = await counseling_of_ana(storage, tenant, 10)
    reaped, exiting = sessions[:5], sessions[5:]
    closed = []
    for session in reaped:
        ended, _ = await storage.sessions.close(
            tenant.id,
            session.id,
            Exit(at=at(3)),
            frozenset({"counseling"}),
            at(60),
            timedelta(days=7),
        )
        closed.append(ended)

    async def settle_batch(s: Any) -> Any:
        return await wired(s, CLOCK).use_cases().deduct_credits().settle_many(closed)

    await race(settle_batch, *(exits(tenant, s.id, 3) for s in exiting))
    await settle_what_is_pending(storage, tenant)

    charges = [(await storage.sessions.get(tenant.id, s.id)).charge for s in sessions]
    assert (
        sorted(c.balance_after for c in charges if c is not None),
        len(await storage.ledger.alerts(tenant.id, limit=50)),
    ) == (sorted(50 - 6 * n for n in range(1, 11)), 2)


# An exit and an events batch with meters for the same session, freely


async def test_exits_and_metered_batches_of_the_same_sessions_are_charged_for_every_meter(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    sessions = await counseling_of_ana(storage, tenant, 6)

    await race(
        *(
            f
            for s in sessions
            for f in (exits(tenant, s.id, 3, {"analysis": 1}), analyses(tenant, s.id, 1, 2))
        )
    )
    await settle_what_is_pending(storage, tenant)

    price = 2 * 3 + 3 * 3  # three minutes, three analyses
    right = (SessionStatus.COMPLETED, at(3), 3, ChargeState.CHARGED, price, -price)
    assert await charged_as(storage, tenant, sessions) == [right] * len(sessions)


# The reaper's provisional end, the client's exit and late events, freely


async def test_the_reaper_a_clients_exit_and_late_events_end_each_session_once_charged_right(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    sessions = await counseling_of_ana(storage, tenant, 5)
    for s in sessions:
        await storage.sessions.heartbeat(tenant.id, s.id, at(3))

    async def reap(s: Any) -> Any:
        return await wired(s, CLOCK).jobs().reap_stale_sessions()(ReapStaleSessionsCommand())

    await race(
        reap, *(f for s in sessions for f in (exits(tenant, s.id, 5), analyses(tenant, s.id, 4)))
    )
    await reap(storage)  # the next run settles what was left pending

    price = 2 * 5 + 3 * 1
    right = (SessionStatus.COMPLETED, at(5), 1, ChargeState.CHARGED, price, -price)
    assert await charged_as(storage, tenant, sessions) == [right] * len(sessions)


# Starts of one subject under a plan's limit, through the use case


async def test_concurrent_starts_of_one_subject_never_pass_the_plans_limit(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    limits = PlanLimits(sessions_per_resource=2, session_kinds=frozenset({"practice", "mock"}))
    await storage.plans.put(tenant.id, Plan("free", default=True, limits=limits))
    clock = FakeClock(at(60))

    def start(kind: str) -> Any:
        request = SessionRequest(kind=kind, resource_id="pdf-1", subject_id="ana")
        command = StartSessionCommand(tenant.id, request)
        return lambda s: wired(s, clock).use_cases().start_session()(command)

    outcomes = await race(*(start(k) for k in ["practice", "mock"] * 4), return_exceptions=True)

    started = [o for o in outcomes if not isinstance(o, BaseException)]
    assert all(isinstance(o, TrialExhausted) for o in outcomes if isinstance(o, BaseException))
    assert len(started) == 2
    assert (
        await storage.sessions.count_started(
            tenant.id, "ana", "pdf-1", frozenset({"practice", "mock"})
        )
        == 2
    )
