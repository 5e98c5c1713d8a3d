"""CreditLedger.settle_many, the reaper's batch settlement: each session charged once, as one
settlement at a time would charge it, whatever a concurrent exit or a correction does, and the
balance always the sum of the ledger — with concurrent callers, on every backend."""

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

import application.sessions.reap_stale_sessions as reaper
from application.data_rights.erase_subject import EraseSubjectCommand
from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from application.storage import SettlementCutShort
from domain.charging import Priced
from domain.credits import EntryKind, LedgerEntry, Rate
from domain.livekit import TrackReport
from domain.session import Charge, ChargeState, Exit, Session, SessionStatus
from domain.staleness import Staleness
from domain.tenants import Tenant
from tests.contract.builders import (
    NOW,
    OPEN,
    SHUT,
    T0,
    a_session,
    add_tenant,
    at,
    stored_session,
    wired,
)
from tests.contract.races import Call, Race
from tests.fakes import FakeClock, FakeTally

pytestmark = pytest.mark.anyio

RATED = frozenset({"counseling"})
SECOND = timedelta(seconds=1)
COUNSELING = Rate("counseling", 2)  # 2 credits a minute


async def grant(storage: Any, tenant: Tenant, subject: str, amount: int) -> None:
    entry = LedgerEntry.grant(str(uuid.uuid4()), tenant.id, subject, amount, "top-up", subject, T0)
    await storage.ledger.grant(entry)


async def closed(storage: Any, tenant: Tenant, subject: str, minutes: float) -> Session:
    """A counseling session of `subject`, ended by its client after `minutes`: pending."""
    session = await stored_session(storage, tenant, kind="counseling", subject_id=subject)
    ended, _ = await storage.sessions.close(
        tenant.id, session.id, Exit(at=at(minutes)), RATED, NOW, SHUT
    )
    assert isinstance(ended, Session) and ended.charge_state is ChargeState.PENDING
    return ended


async def assert_books_balance(storage: Any, tenant: Tenant, subjects: list[str]) -> None:
    """Each subject's balance is exactly the sum of its ledger."""
    for subject in subjects:
        entries = await storage.ledger.entries(tenant.id, subject, limit=500)
        balance = await storage.ledger.balance(tenant.id, subject)
        assert balance.balance == sum(e.amount for e in entries), subject


async def session_entries(storage: Any, tenant: Tenant, subject: str) -> dict[str, list[Any]]:
    """The subject's charges and adjustments by session: (kind, amount, revision) each."""
    found: dict[str, list[Any]] = {}
    for e in await storage.ledger.entries(tenant.id, subject, limit=500):
        if e.session_id is not None:
            found.setdefault(e.session_id, []).append((e.kind, e.amount, e.session_revision))
    return found


async def test_a_batch_charges_each_session_once_and_a_second_run_charges_nothing(
    storage: Any, tenant: Tenant
) -> None:
    await grant(storage, tenant, "ann", 100)
    await grant(storage, tenant, "bob", 10)
    sessions = [
        await closed(storage, tenant, subject, minutes)
        for subject, minutes in [("ann", 3), ("ann", 5), ("bob", 4), ("bob", 2), ("cyd", 1)]
    ]
    priced = [Priced(s, 2 * int(s.duration_seconds or 0) // 60) for s in sessions]

    charges = await storage.ledger.settle_many(tenant.id, priced, at(30))

    assert {i: c.credits for i, c in charges.items()} == {p.session_id: p.credits for p in priced}
    for subject in ("ann", "bob", "cyd"):
        mine = [p for p in priced if p.session.subject_id == subject]
        by_session = await session_entries(storage, tenant, subject)
        assert by_session == {p.session_id: [(EntryKind.CHARGE, -p.credits, 0)] for p in mine}, (
            subject
        )
    for s in sessions:
        stored = await storage.sessions.get(tenant.id, s.id)
        assert (stored.charge_state, stored.charge) == (ChargeState.CHARGED, charges[s.id])
    assert await storage.sessions.pending_charges(tenant.id, 10) == []
    balances = [(await storage.ledger.balance(tenant.id, s)).balance for s in ("ann", "bob", "cyd")]
    assert balances == [100 - 6 - 10, 10 - 8 - 4, -2]
    await assert_books_balance(storage, tenant, ["ann", "bob", "cyd"])

    assert await storage.ledger.settle_many(tenant.id, priced, at(31)) == {}
    assert sum(len(v) for v in (await session_entries(storage, tenant, "ann")).values()) == 2
    balances_again = [
        (await storage.ledger.balance(tenant.id, s)).balance for s in ("ann", "bob", "cyd")
    ]
    assert balances_again == balances


async def test_a_batch_records_what_one_settlement_at_a_time_would(storage: Any) -> None:
    # The same sessions (the same ids) in two tenants: one settled in a batch, the other one at
    # a time in session id order. Balances run below zero along the way: warnings and alerts.
    batched, single = await add_tenant(storage, "batched"), await add_tenant(storage, "single")
    plan = [
        ("s3", "ann", 2),
        ("s1", "ann", 3),
        ("s4", "ann", 1),
        ("s0", "bob", 2),
        ("s2", "bob", 1),
    ]
    recorded = []
    for tenant in (batched, single):
        await grant(storage, tenant, "ann", 9)
        priced = []
        for session_id, subject, minutes in plan:
            started = replace(
                a_session(tenant, kind="counseling", subject_id=subject), id=session_id
            )
            assert await storage.sessions.add(started)
            ended, _ = await storage.sessions.close(
                tenant.id, session_id, Exit(at=at(minutes)), RATED, NOW, SHUT
            )
            priced.append(Priced(ended, 2 * minutes))
        if tenant is batched:
            charges = await storage.ledger.settle_many(tenant.id, priced, at(30))
        else:
            charges = {
                p.session_id: await storage.ledger.settle(
                    tenant.id, p.session_id, 0, p.credits, at(30)
                )
                for p in sorted(priced, key=lambda p: p.session_id)
            }
        entries = [
            (e.session_id, e.kind, e.amount, e.reason, e.session_revision, e.created_at)
            for subject in ("ann", "bob")
            for e in await storage.ledger.entries(tenant.id, subject, limit=50)
            if e.session_id is not None
        ]
        alerts = [
            (a.session_id, a.kind, a.subject_id, a.detail, a.created_at)
            for a in await storage.ledger.alerts(tenant.id, limit=50)
        ]
        recorded.append((charges, sorted(entries), sorted(alerts)))
        await assert_books_balance(storage, tenant, ["ann", "bob"])

    assert recorded[0] == recorded[1]
    # In id order: bob's s0 (4 of 0: -4), ann's s1 (6 of 9: 3), bob's s2 (2: -6), ann's s3
    # (4: -1), ann's s4 (2: -3).
    assert recorded[0][0] == {
        "s0": Charge(4, -4, "negative_balance"),
        "s1": Charge(6, 3, None),
        "s2": Charge(2, -6, "negative_balance"),
        "s3": Charge(4, -1, "negative_balance"),
        "s4": Charge(2, -3, "negative_balance"),
    }
    assert [(a[0], a[3]) for a in recorded[0][2]] == [
        ("s0", "charging 4 credits left a balance of -4"),
        ("s2", "charging 2 credits left a balance of -6"),
        ("s3", "charging 4 credits left a balance of -1"),
        ("s4", "charging 2 credits left a balance of -3"),
    ]


async def test_a_session_whose_subject_was_erased_since_it_was_priced_is_charged_to_the_pseudonym(
    storage: Any, tenant: Tenant
) -> None:
    await storage.rates.put(tenant.id, COUNSELING)
    await grant(storage, tenant, "ann", 100)
    session = await closed(storage, tenant, "ann", 3)
    # Erased after the batch read the session: the session and the ledger move to a pseudonym.
    use_cases = wired(storage, FakeClock(at(20))).use_cases()
    await use_cases.erase_subject()(EraseSubjectCommand(tenant, "ann"))
    pseudonym = (await storage.sessions.get(tenant.id, session.id)).subject_id

    # Charged as read, it would land under "ann" (balance -6), after her ledger moved.
    assert await storage.ledger.settle_many(tenant.id, [Priced(session, 6)], at(20)) == {}
    assert (await storage.sessions.get(tenant.id, session.id)).charge_state is ChargeState.PENDING

    (settled,) = await use_cases.deduct_credits().settle_many([session])

    assert settled.charge == Charge(6, 94, None)
    assert await session_entries(storage, tenant, "ann") == {}
    assert await session_entries(storage, tenant, pseudonym) == {
        session.id: [(EntryKind.CHARGE, -6, 0)]
    }
    await assert_books_balance(storage, tenant, ["ann", pseudonym])


async def test_a_session_corrected_since_it_was_priced_is_left_to_its_new_revision(
    storage: Any, tenant: Tenant
) -> None:
    await storage.rates.put(tenant.id, COUNSELING)
    session = await stored_session(storage, tenant, kind="counseling")
    await storage.sessions.heartbeat(tenant.id, session.id, at(3))
    (timed_out,) = await storage.sessions.time_out_idle(
        tenant.id, Staleness(at(10)), 10, RATED, NOW, OPEN
    )
    # The client's own exit replaces the reaper's guess after the batch read the session.
    await storage.sessions.close(tenant.id, session.id, Exit(at=at(7)), RATED, NOW, OPEN)

    assert await storage.ledger.settle_many(tenant.id, [Priced(timed_out, 6)], at(20)) == {}
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.charge_state is ChargeState.PENDING and stored.charge_revision == 1
    assert await session_entries(storage, tenant, "user-1") == {}

    # DeductCredits reads it again and settles the revision it finds, at its new price.
    deduct = wired(storage, FakeClock(at(20))).use_cases().deduct_credits()
    (settled,) = await deduct.settle_many([timed_out])

    assert settled.charge_state is ChargeState.CHARGED
    assert settled.charge == Charge(14, -14, "negative_balance")
    assert await session_entries(storage, tenant, "user-1") == {
        session.id: [(EntryKind.CHARGE, -14, 1)]
    }
    await assert_books_balance(storage, tenant, ["user-1"])


async def test_a_batch_settles_a_correction_as_one_adjustment_and_never_alerts_it(
    storage: Any, tenant: Tenant
) -> None:
    await grant(storage, tenant, "user-1", 10)
    session = await closed(storage, tenant, "user-1", 5)
    assert await storage.ledger.settle_many(tenant.id, [Priced(session, 10)], at(6)) == {
        session.id: Charge(10, 0, None)
    }
    # A LiveKit track's seconds reach the charged session: it is to be settled again.
    track = TrackReport("TR_1", "video.seconds", at(1), at(2))
    assert await storage.tracks.record(tenant.id, session.id, track)
    repriced = await storage.sessions.get(tenant.id, session.id)
    assert repriced.charge_state is ChargeState.PENDING and repriced.charge_revision == 1

    charges = await storage.ledger.settle_many(tenant.id, [Priced(repriced, 13)], at(7))

    assert charges == {session.id: Charge(13, -3, "negative_balance")}
    assert await session_entries(storage, tenant, "user-1") == {
        session.id: [(EntryKind.CHARGE, -10, 0), (EntryKind.ADJUSTMENT, -3, 1)]
    }
    assert await storage.ledger.alerts(tenant.id, limit=10) == []
    await assert_books_balance(storage, tenant, ["user-1"])


async def test_an_exit_settling_its_session_while_the_batch_runs_charges_it_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    # Sessions closed by their clients and left pending (the exits' own settlements were cut
    # short); the reaper's batch and each exit's settlement, retried, then race for them.
    await storage.rates.put(tenant.id, COUNSELING)
    await grant(storage, tenant, "user-1", 100)
    sessions = [await closed(storage, tenant, "user-1", minutes) for minutes in range(1, 9)]
    clock = FakeClock(at(60))

    # Each caller has its own copies, as it would have read them.
    def batch(storage: Any) -> Any:
        deduct = wired(storage, clock).use_cases().deduct_credits()
        return deduct.settle_many([s.copy() for s in sessions])

    def exit_settling(session: Session) -> Call:
        return lambda storage: wired(storage, clock).use_cases().deduct_credits()(session.copy())

    settled = await race(batch, *(exit_settling(s) for s in sessions))

    by_batch, by_exits = settled[0], settled[1:]
    for session, from_batch, from_exit in zip(sessions, by_batch, by_exits, strict=True):
        price = 2 * int(session.duration_seconds or 0) // 60
        assert from_batch.charge.credits == from_exit.charge.credits == price
        stored = await storage.sessions.get(tenant.id, session.id)
        assert stored.charge_state is ChargeState.CHARGED and stored.charge.credits == price
    assert await session_entries(storage, tenant, "user-1") == {
        s.id: [(EntryKind.CHARGE, -2 * int(s.duration_seconds or 0) // 60, 0)] for s in sessions
    }
    assert (await storage.ledger.balance(tenant.id, "user-1")).balance == 100 - 2 * sum(range(1, 9))
    await assert_books_balance(storage, tenant, ["user-1"])


async def test_the_reaper_closes_and_charges_a_backlog_batch_by_batch(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reaper, "BATCH_SIZE", 3)
    await storage.rates.put(tenant.id, COUNSELING)
    subjects = ["ann", "bob", "cyd"]
    for subject in subjects:
        await grant(storage, tenant, subject, 20)
    stale = []
    for n in range(8):  # each last seen 2 minutes after it started: 4 credits
        session = await stored_session(
            storage, tenant, n, kind="counseling", subject_id=subjects[n % 3]
        )
        await storage.sessions.heartbeat(tenant.id, session.id, at(n + 2))
        stale.append(session)
    unrated = await stored_session(storage, tenant, kind="webinar")
    left_pending = await closed(storage, tenant, "ann", 3)  # a crash cut its exit's charge short
    tally = FakeTally()
    reap = wired(storage, FakeClock(at(60)), tally=tally).jobs().reap_stale_sessions()

    reaped = await reap(ReapStaleSessionsCommand())

    assert reaped.closed == 9 and reaped.failures == []
    assert reaped.closed_by == {("counseling", "timed_out"): 8, ("webinar", "timed_out"): 1}
    assert tally.total == 8 * 4 + 6
    for s in stale:
        stored = await storage.sessions.get(tenant.id, s.id)
        assert (stored.status, stored.ended_at) == (
            SessionStatus.TIMED_OUT,
            s.started_at + 120 * SECOND,
        )
        assert stored.charge_state is ChargeState.CHARGED and stored.charge.credits == 4
    assert (await storage.sessions.get(tenant.id, unrated.id)).charge_state is (
        ChargeState.NOT_CHARGED
    )
    assert (await storage.sessions.get(tenant.id, left_pending.id)).charge.credits == 6
    assert await storage.sessions.pending_charges(tenant.id, 10) == []
    entries = {subject: await session_entries(storage, tenant, subject) for subject in subjects}
    assert entries["ann"] == {
        **{s.id: [(EntryKind.CHARGE, -4, 0)] for s in stale[0::3]},
        left_pending.id: [(EntryKind.CHARGE, -6, 0)],
    }
    assert entries["bob"] == {s.id: [(EntryKind.CHARGE, -4, 0)] for s in stale[1::3]}
    assert entries["cyd"] == {s.id: [(EntryKind.CHARGE, -4, 0)] for s in stale[2::3]}
    balances = [(await storage.ledger.balance(tenant.id, s)).balance for s in subjects]
    assert balances == [20 - 3 * 4 - 6, 20 - 3 * 4, 20 - 2 * 4]

    again = await reap(ReapStaleSessionsCommand())

    assert (again.closed, tally.total) == (0, 8 * 4 + 6)
    assert {subject: await session_entries(storage, tenant, subject) for subject in subjects} == (
        entries
    )
    await assert_books_balance(storage, tenant, subjects)


class BatchFailsOnce:
    """A ledger whose first batch settlement fails, as if the process died between closing a
    batch of sessions and charging them."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    async def settle_many(self, tenant_id: str, priced: Any, at: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the process died here")
        return await self._ledger.settle_many(tenant_id, priced, at)


async def test_a_batch_closed_but_not_charged_is_charged_by_the_next_run(
    storage: Any, tenant: Tenant
) -> None:
    await storage.rates.put(tenant.id, COUNSELING)
    sessions = [await stored_session(storage, tenant, kind="counseling") for _ in range(3)]
    for s in sessions:
        await storage.sessions.heartbeat(tenant.id, s.id, at(4))
    tally = FakeTally()
    container = wired(
        storage, FakeClock(at(60)), tally=tally, ledger=BatchFailsOnce(storage.ledger)
    )
    reap = container.jobs().reap_stale_sessions()

    first = await reap(ReapStaleSessionsCommand())

    assert [f.error for f in first.failures] != []
    for s in sessions:
        stored = await storage.sessions.get(tenant.id, s.id)
        assert (stored.status, stored.charge_state) == (
            SessionStatus.TIMED_OUT,
            ChargeState.PENDING,
        )

    second = await reap(ReapStaleSessionsCommand())

    assert second.failures == [] and tally.told == [8] * 3
    assert await session_entries(storage, tenant, "user-1") == {
        s.id: [(EntryKind.CHARGE, -8, 0)] for s in sessions
    }
    await assert_books_balance(storage, tenant, ["user-1"])


@pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)
async def test_a_mongodb_batch_that_died_after_its_claims_is_finished_once(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a transaction the claims go first, each noting on its session the entry it owes
    # the ledger; the process dies before writing them. pending_charges (the reaper) finds the
    # notes and writes the entries, once; settling again writes nothing.
    import adapters.mongodb.credits

    sessions = [await closed(storage, tenant, "user-1", minutes) for minutes in (2, 3)]
    priced = [Priced(s, 2 * int(s.duration_seconds or 0) // 60) for s in sessions]

    async def dies(*args: Any) -> None:
        raise ConnectionError("the process died")

    with monkeypatch.context() as patched:
        patched.setattr(adapters.mongodb.credits, "_insert_once", dies)
        with pytest.raises(SettlementCutShort) as cut:
            await storage.ledger.settle_many(tenant.id, priced, at(10))
    assert set(cut.value.charges) == {s.id for s in sessions}
    assert await session_entries(storage, tenant, "user-1") == {}

    assert await storage.sessions.pending_charges(tenant.id, 10) == []
    assert await storage.ledger.settle_many(tenant.id, priced, at(11)) == {}
    assert await session_entries(storage, tenant, "user-1") == {
        sessions[0].id: [(EntryKind.CHARGE, -4, 0)],
        sessions[1].id: [(EntryKind.CHARGE, -6, 0)],
    }
    assert (await storage.ledger.balance(tenant.id, "user-1")).balance == -10
