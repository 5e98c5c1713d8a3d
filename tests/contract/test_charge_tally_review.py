"""A hostile review of 3af3167 (the settlement that writes a session's first charge tells the
ChargeTally, the `sessionmeter_credits_charged` metric; MongoDB's batch claims record
`claimed_by`) and 8ce1fcb (the reaper's look at the rooms of the stays its timeouts closed takes
only rooms that finished by the run's `now`).

The invariant held here, over any interleaving of callers: what the tally hears adds up to the
ledger's `charge` entries (one per session at most), never more, never less; and the ledger
stays right (each subject's balance is the sum of its entries, one entry per (session,
revision)). DESIGN.md: "charging a session: at most one ledger entry per session, ever" (one per
revision since wave 2), "the balance always equals the sum of the ledger", "Crash safety: ... A
session closed but not yet charged ... is settled by the reaper", "Background jobs ... are safe
to run concurrently on several machines". ChargeTally (application/credits/ports.py): "Told once
of each session's first charge, by the settlement that wrote it; never of an adjustment".

`tally` hears every container of a test (each racer's, each helper's). The review found the look
of 8ce1fcb wrong for a room_finished stamped before the run and handled inside it (mended next:
the look takes only stays the sweep did not read open) and a MongoDB gap (section 1, mended
since: SettlementCutShort)."""

import threading
from collections.abc import Sequence
from typing import Any
from unittest.mock import patch

import pytest

import adapters.mongodb.credits
from application.data_rights.erase_subject import EraseSubjectCommand
from application.events.ingest_events import IngestEventsCommand
from application.sessions.record_exit import RecordExitCommand
from application.storage import StorageError
from domain.credits import EntryKind
from domain.erasure import is_pseudonym
from domain.events import Event
from domain.session import ChargeState, Exit, Session, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import OPEN, at, wired
from tests.contract.conftest import WAIT
from tests.contract.erasure_builders import (
    CLOCK,
    ana_has_100_credits_for_counseling,
    closed,
)
from tests.contract.races import HoldsAfterErasing, Race, after, wait_for
from tests.contract.test_charge_counting_review import (
    KIOSK,
    assert_ended,
    reap_at,
    room_finished_around_the_run,
    stale_kiosks,
)
from tests.contract.test_finished_room_sweep_review import paused, reaping
from tests.contract.test_todays_fixes_review import books_of, stamped, stay_of
from tests.fakes import FakeClock, FakeTally

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)


async def first_charges_in_the_books(
    storage: Any,
    tenant: Tenant,
    subjects: list[str],
    sessions: Sequence[Session] = (),
) -> int:
    """The sum of the subjects' `charge` entries, once the books are checked: each subject's
    balance is the sum of its entries, one entry per (session, revision), one `charge` per
    session; each of `sessions` is charged what its entries add up to."""
    total = 0
    by_session: dict[str, int] = {}
    for subject in subjects:
        written = await storage.ledger.entries(tenant.id, subject, limit=10_000)
        balance = await storage.ledger.balance(tenant.id, subject)
        assert balance.balance == sum(e.amount for e in written), (subject, balance)
        keys = [(e.session_id, e.session_revision) for e in written if e.session_id]
        assert len(keys) == len(set(keys)), keys
        charges = [e.session_id for e in written if e.kind is EntryKind.CHARGE]
        assert len(charges) == len(set(charges)), charges
        total += -sum(int(e.amount) for e in written if e.kind is EntryKind.CHARGE)
        for e in written:
            if e.session_id is not None:
                by_session[e.session_id] = by_session.get(e.session_id, 0) - int(e.amount)
    for session in sessions:
        stored = await storage.sessions.get(tenant.id, session.id)
        assert stored.charge_state is ChargeState.CHARGED, stored
        assert stored.charge is not None
        assert by_session.get(session.id, 0) == stored.charge.credits, (stored, by_session)
    return total


def exit_at(tenant: Tenant, session: Session, minute: float, now: float = 95) -> Any:
    async def call(s: Any) -> Any:
        record_exit = wired(s, FakeClock(at(now))).use_cases().record_exit()
        return await record_exit(RecordExitCommand(tenant.id, session.id, at=at(minute)))

    return call


# --- 1. MongoDB: a settlement cut short after its claim, the process alive ---------------------


# Found (the metric only; the ledger was right): on MongoDB a settlement's claim and its entry
# are two writes; when the second failed and the process lived on, whoever finished the claim's
# note later wrote the entry but told no tally. The caller whose write failed now tells it
# (SettlementCutShort), before the error reaches its client.


class _DropsOnce:
    """A module function of adapters.mongodb.credits that fails once (a primary stepping down,
    a connection dropped) and then works."""

    def __init__(self, real: Any) -> None:
        self._real, self.failed = real, 0

    async def __call__(self, *args: Any) -> Any:
        if not self.failed:
            self.failed += 1
            raise ConnectionError("the connection dropped")
        return await self._real(*args)


@on_mongodb
async def test_an_exit_whose_entry_write_dropped_after_its_claim_is_counted_once_finished(
    storage: Any, tenant: Tenant, tally: FakeTally
) -> None:
    """MongoDB's settlement is two writes: the claim (the session charged, noting the entry it
    owes) and the entry. The connection drops between them: the exit fails, the server lives
    on. The client retries its exit and the reaper runs: DESIGN.md, the next settlement or the
    reaper finishes the claim, so the ledger holds the session's first charge (60). ChargeTally:
    each first charge is told once; so the metric must hear 60, not 0 (on SQL the claim and
    the entry are one transaction, and the retry's settlement tells it)."""
    (session,) = await stale_kiosks(storage, tenant, 1)
    drops = _DropsOnce(adapters.mongodb.credits.finish_due)

    with (
        patch.object(adapters.mongodb.credits, "finish_due", drops),
        pytest.raises((ConnectionError, StorageError)),
    ):
        await exit_at(tenant, session, 20)(storage)
    assert drops.failed == 1
    await exit_at(tenant, session, 20)(storage)  # the client retries
    await reap_at(storage, 100)

    written = await first_charges_in_the_books(storage, tenant, ["k0"], [session])
    assert written == 20 * KIOSK.credits_per_minute
    assert tally.told == [written]


@on_mongodb
async def test_a_reapers_batch_whose_entries_dropped_after_its_claims_is_counted_once_finished(
    storage: Any, tenant: Tenant, tally: FakeTally
) -> None:
    """The same for the reaper's batch (MongoCreditLedger.settle_many): its bulk claim is made,
    the insert of its entries fails (connection dropped), the run reports the failure; the next
    run finishes the claims (pending_charges) and the ledger holds the 5 first charges. They
    must be told once each: the tally must add up to the ledger."""
    sessions = await stale_kiosks(storage, tenant, 5)
    drops = _DropsOnce(adapters.mongodb.credits._insert_once)

    with patch.object(adapters.mongodb.credits, "_insert_once", drops):
        first = await reap_at(storage, 95)
    assert drops.failed == 1
    await told_once_after(first, storage, tenant, tally, sessions)


async def told_once_after(
    failed: Any, storage: Any, tenant: Tenant, tally: FakeTally, sessions: list[Session]
) -> None:
    """A reaper's run at minute 95 that `failed` over the stale kiosks `sessions` (subjects k0,
    k1, ...), then two more: each first charge in the books is told once."""
    assert failed.failures, failed
    await reap_at(storage, 96)
    await reap_at(storage, 97)

    subjects = [f"k{i}" for i in range(len(sessions))]
    written = await first_charges_in_the_books(storage, tenant, subjects, sessions)
    assert written > 0
    assert tally.total == written, (tally.told, written)


# --- 2. Claims, corrections and findings: who tells --------------------------------------------


@pytest.mark.parametrize("attempt", range(2))
async def test_corrections_between_the_batch_and_its_telling_leave_one_count_per_first_charge(
    storage: Any, tenant: Tenant, race: Race, attempt: int, tally: FakeTally
) -> None:
    """Forced: the reaper's batch settled 6 timed-out sessions in the store (settle_many has
    returned) and stops before telling; meanwhile each client's exit (20) corrects its session
    (an adjustment) and is settled whole. The run goes on and tells its first charges. The
    exits' adjustments are told nothing: the tally adds up to the ledger's charge entries."""
    sessions = await stale_kiosks(storage, tenant, 6)
    reached, go = threading.Event(), threading.Event()

    async def exits(s: Any) -> None:
        for session in sessions:
            await exit_at(tenant, session, 20)(s)

    await race(
        lambda s: reaping(s, 95, **paused(s, "ledger", "settle_many", reached, go, before=False)),
        after(reached, go, exits),
    )
    await reap_at(storage, 100)

    subjects = [f"k{i}" for i in range(6)]
    written = await first_charges_in_the_books(storage, tenant, subjects, sessions)
    await assert_ended(storage, tenant, sessions, SessionStatus.COMPLETED, 20)
    assert tally.total == written, (tally.told, written)


class _PausesAfterBulkClaims:
    """MongoDB's sessions collection, as a ledger sees it: after its first bulk write (a batch's
    claims) it lets the other racer go (`reached`) and waits until it is done (`go`)."""

    def __init__(self, inner: Any, reached: threading.Event, go: threading.Event) -> None:
        self._inner, self._reached, self._go = inner, reached, go

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
        done = await self._inner.bulk_write(*args, **kwargs)
        if not self._reached.is_set():
            self._reached.set()
            await wait_for(self._go)
        return done


@on_mongodb
@pytest.mark.parametrize("then", ["finished", "finished-and-corrected"])
async def test_a_batch_claim_finished_by_another_before_its_find_is_told_once(
    storage: Any, tenant: Tenant, race: Race, then: str, tally: FakeTally
) -> None:
    """MongoDB, 3af3167's own case and the one after: the reaper's bulk claim of 4 sessions is
    made and it stops before finding what it claimed; meanwhile another caller finishes the
    claims' notes (pending_charges: the entries go in, the notes are cleared), and
    (`finished-and-corrected`) each client's exit corrects its session (revision 1, pending
    again, its `claimed_by` left as it was). The run goes on: it still knows the sessions it
    claimed, tells their first charges once, and its pending loop settles the corrections as
    adjustments, told nothing. The tally adds up to the ledger's charge entries."""
    sessions = await stale_kiosks(storage, tenant, 4)
    reached, go = threading.Event(), threading.Event()

    async def reaper(s: Any) -> Any:
        s.ledger._sessions = _PausesAfterBulkClaims(s.ledger._sessions, reached, go)
        return await reaping(s, 95)

    async def meanwhile(s: Any) -> None:
        await s.sessions.pending_charges(tenant.id, 100)  # finishes the notes it finds
        if then == "finished-and-corrected":
            for session in sessions:
                await s.sessions.close(
                    tenant.id, session.id, Exit(at(20)), frozenset({"kiosk"}), at(95), OPEN
                )

    await race(reaper, after(reached, go, meanwhile))
    await reap_at(storage, 100)

    subjects = [f"k{i}" for i in range(4)]
    written = await first_charges_in_the_books(storage, tenant, subjects, sessions)
    assert written > 0
    assert tally.total == written, (tally.told, written)
    leftovers = await storage.ledger._sessions.count_documents(
        {"tenant_id": tenant.id, "due": {"$ne": None}}
    )
    assert leftovers == 0


@on_mongodb
async def test_the_claim_id_left_on_a_session_breaks_nothing_that_reads_or_rewrites_it(
    storage: Any, tenant: Tenant, tally: FakeTally
) -> None:
    """MongoDB: 3af3167 leaves `claimed_by` on each session a batch claimed, for good. The
    session is read back, exported, corrected, erased (guarded writes on what was read) and
    settled again as before: the erasure gives it the pseudonym, the correction's adjustment
    and the first charge are both in the books under it, once, and the tally heard the first
    charge only."""
    sessions = await stale_kiosks(storage, tenant, 2)
    await reap_at(storage, 95)
    raw = await storage.ledger._sessions.find_one({"tenant_id": tenant.id, "id": sessions[0].id})
    assert raw.get("claimed_by"), raw  # what the commit added
    assert (await storage.sessions.get(tenant.id, sessions[0].id)).charge is not None

    await exit_at(tenant, sessions[0], 20)(storage)  # a correction: an adjustment
    erased = (
        await wired(storage, CLOCK).use_cases().erase_subject()(EraseSubjectCommand(tenant, "k0"))
    )
    assert erased.sessions == 1, erased
    exported = [
        r
        async for r in storage.archive.export(tenant.id)
        if isinstance(r, Session) and r.id == sessions[0].id
    ]
    (stored,) = exported
    assert is_pseudonym(stored.subject_id) and stored.ended_at == at(20), stored

    assert stored.subject_id is not None
    written = await first_charges_in_the_books(storage, tenant, [stored.subject_id, "k1"], sessions)
    assert await storage.ledger.entries(tenant.id, "k0", limit=10) == []
    assert tally.total == written, (tally.told, written)


# --- 3. Everyone at once -----------------------------------------------------------------------


@pytest.mark.parametrize("attempt", range(3))
async def test_reapers_exits_and_event_batches_at_once_tell_each_first_charge_once(
    storage: Any, tenant: Tenant, race: Race, attempt: int, tally: FakeTally
) -> None:
    """DESIGN.md: every guarantee lives in the database; background jobs are safe to run on
    several machines. Two reapers, the clients' exits of 8 sessions (at 20) and event batches
    of 8 others (an event at 30, which moves a reaper's end, or keeps an open session alive)
    race over 16 idle kiosk sessions; later runs settle what is left. Each session ends as its
    evidence says, the books are right, and the tally adds up to the ledger's charge entries."""
    sessions = await stale_kiosks(storage, tenant, 16)
    exited, evented = sessions[:8], sessions[8:]

    async def exits(s: Any) -> None:
        for session in exited:
            await exit_at(tenant, session, 20)(s)

    async def events(s: Any) -> None:
        ingest = wired(s, FakeClock(at(95))).use_cases().ingest_events()
        for session in evented:
            await ingest(IngestEventsCommand(tenant, [Event(session.id, 1, "tap", at(30))]))

    await race(lambda s: reap_at(s, 95), lambda s: reap_at(s, 95), exits, events)
    await reap_at(storage, 100)
    await reap_at(storage, 101)

    subjects = [f"k{i}" for i in range(16)]
    written = await first_charges_in_the_books(storage, tenant, subjects, sessions)
    await assert_ended(storage, tenant, exited, SessionStatus.COMPLETED, 20)
    await assert_ended(storage, tenant, evented, SessionStatus.TIMED_OUT, 30)
    assert tally.total == written, (tally.told, written)


@pytest.mark.parametrize("attempt", range(2))
async def test_an_erasure_holding_the_ledger_while_exits_and_a_reaper_settle_counts_once(
    storage: Any,
    storage_url: str,
    tenant: Tenant,
    race: Race,
    attempt: int,
    tally: FakeTally,
    short_waits: None,
) -> None:
    """An erasure of Ana holds her ledgers after her 3 pending sessions got their pseudonym,
    longer than a settlement waits (LedgerHeld, or left to the reaper while the erasure is
    unfinished); meanwhile her exits are replayed (each settles what is pending) and a reaper
    runs. Nothing is charged twice, nothing is told that is not written: once the erasure is
    done, the reaper charges what is left, and the tally adds up to the charge entries, all
    under the pseudonym."""
    await ana_has_100_credits_for_counseling(storage, tenant)
    pending = [await closed(storage, tenant) for _ in range(3)]
    holding = threading.Event()
    # Past the settlement's wait: PostgreSQL's (5 s) or the shortened one.
    hold = 6.0 if storage_url.startswith("postgresql") else 3 * WAIT

    async def forget(s: Any) -> Any:
        erasure = HoldsAfterErasing(s.erasure, holding, hold)
        use_cases = wired(s, CLOCK, erasure=erasure).use_cases()
        return await use_cases.erase_subject()(EraseSubjectCommand(tenant, "ana"))

    async def replays(s: Any) -> None:
        await wait_for(holding)
        for session in pending:
            await exit_at(tenant, session, 3, now=60)(s)

    async def reaper(s: Any) -> Any:
        await wait_for(holding)
        return await reap_at(s, 60)

    await race(forget, replays, reaper)
    await reap_at(storage, 61)

    stored = [await storage.sessions.get(tenant.id, s.id) for s in pending]
    pseudonym = stored[0].subject_id
    assert is_pseudonym(pseudonym), stored
    assert pseudonym is not None
    assert await storage.ledger.entries(tenant.id, "ana", limit=10) == []
    written = await first_charges_in_the_books(storage, tenant, [pseudonym], pending)
    assert written == 3 * 6
    assert tally.total == written, (tally.told, written)


# --- 4. 8ce1fcb: a room_finished stamped before the run, handled during it ---------------------


@pytest.mark.parametrize("order", ["room-after-the-run", "room-inside-the-run"])
async def test_a_room_finished_before_the_run_but_handled_inside_it_leaves_the_reapers_end(
    storage: Any, race: Race, order: str, tally: FakeTally
) -> None:
    """8ce1fcb: "room_finished leaves ended stays alone, so the look must too": a stay the
    reaper's timeouts closed keeps the reaper's end when the room's room_finished is handled
    after the timeouts. Ana was last seen at 80; the run at 95 times her stay out at 80. Her
    room finished at 94 by LiveKit's stamp, and its webhook (in flight, LiveKit retrying) is
    handled after the timeouts: after the run, or between its timeouts and its look at the
    finished rooms. Either way room_finished found the stay ended: it keeps the reaper's end
    (80, timed_out), charged 80 once, told once. (The stamp is earlier than the run's `now`,
    as LiveKit's stamp of a webhook delivered late always is.)"""
    tenant, server = await room_finished_around_the_run(
        storage, race, 94, inside=order == "room-inside-the-run"
    )

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    seen = (stay.status, stay.ended_at, stay.exit_reason, credits)
    assert seen == (SessionStatus.TIMED_OUT, stamped(80), None, 80), seen
    charges = [-e.amount for e in written if e.kind is EntryKind.CHARGE]
    assert tally.told == charges, (tally.told, charges)
