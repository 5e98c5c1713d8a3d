"""Hostile review (a helper's) of remembered sessions on PostgreSQL (0e7d739, f66f3a3, 7f897e8:
adapters.sqlalchemy.remembered_sessions with asyncpg_events.AsyncpgBatchWriter): a session's
next batch starts from a copy of the session as this process last wrote it, and its write is
guarded by the Version that write left.

The promise held here: each event stored once and counted once, refusals and duplicates answered
as the locked way would answer them, and nothing stale taken from memory, whether written or
answered. (What test_remembered_sessions.py and test_unlocked_batches_review.py check is not
repeated.)"""

from decimal import Decimal
from typing import Any

import pytest

from adapters.sqlalchemy.remembered_sessions import RememberedSessions
from domain.erasure import Forgetting, Pseudonyms
from domain.events import Event
from domain.session import Exit, Session
from domain.staleness import Staleness
from domain.tenants import Tenant
from domain.usage import Usage
from tests.contract.builders import NOW, OPEN, a_grant, a_session, at, batch, stored_session
from tests.contract.test_remembered_sessions import (
    as_stored,
    counted_once,
    guarded_writes,
    reads,
)
from tests.contract.test_sqlalchemy_specifics import on_postgresql
from tests.contract.test_unlocked_batches_review import (
    COUNSELING,
    RATED,
    Ways,
    outcome_of,
    sessions_of_one_id,
    state_of,
)

pytestmark = pytest.mark.anyio


def tap(session: Session, n: int, minutes: float | None = None, **meters: Any) -> Event:
    return Event(
        session.id, n, "tap", at(n if minutes is None else minutes), meters=meters or {"taps": 1}
    )


def kiosk_2_key(session: Session, event: Event) -> str | None:
    """What a key scoped to the resource kiosk-2 may write (as domain.events.admission_of)."""
    if session.resource_id != "kiosk-2":
        return f"forbidden: this key is scoped to other resources than {session.resource_id}"
    return None


def kinds(usage: Usage) -> dict[str, type]:
    """Which meters are decimals: Session equality compares 1 == Decimal(1)."""
    return {meter: type(quantity) for meter, quantity in usage.items()}


# Stale memory answering without a write.


async def test_a_session_started_again_under_a_deleted_ones_id_takes_a_scoped_keys_events(
    storage: Any, storage_url: str, tenant: Tenant
) -> None:
    """Risk: a client names its sessions (start_session takes a session_id). A session of
    kiosk-1 is written (and so remembered), deleted (erasure's delete_sessions), and started
    again under its id for kiosk-2. A key scoped to kiosk-2 sends its first event. The
    remembered copy still says kiosk-1: `admits` rejects every event of the batch, nothing is
    left to write, and append_unless_changed answered without any guarded statement, from memory.
    The locked way (and a process that does not remember the session) stores the event.
    Failed (the event rejected as forbidden, never stored); holds since a recalled batch that
    would write nothing is read afresh."""
    on_postgresql(storage_url)
    old = await stored_session(storage, tenant, resource_id="kiosk-1")
    assert (await storage.events.append(tenant.id, batch(tap(old, 1)), NOW, OPEN)).inserted == 1
    await storage.erasure.delete_sessions(tenant.id, [old.id])
    again = a_session(tenant, resource_id="kiosk-2")
    again.id = old.id
    assert await storage.sessions.add(again)

    outcome = await storage.events.append(tenant.id, batch(tap(again, 1)), NOW, OPEN, kiosk_2_key)

    assert (outcome.inserted, outcome.rejections) == (1, [])
    stored = await storage.sessions.get(tenant.id, again.id)
    assert (stored.resource_id, stored.event_count, stored.usage) == ("kiosk-2", 1, {"taps": 1})


async def test_a_deleted_session_is_not_found_rather_than_forbidden_from_memory(
    storage: Any, storage_url: str, tenant: Tenant, other_process: Any
) -> None:
    """Risk: as above without the new start: the remembered copy of a deleted session answers
    a scoped key's batch (forbidden) where the locked way, and another process, answer
    session_not_found. Failed (the answer came from the deleted session's copy); holds."""
    on_postgresql(storage_url)
    session = await stored_session(storage, tenant, resource_id="kiosk-1")
    assert (await storage.events.append(tenant.id, batch(tap(session, 1)), NOW, OPEN)).inserted == 1
    await storage.erasure.delete_sessions(tenant.id, [session.id])
    late = batch(tap(session, 2))

    theirs = await other_process.events.append(tenant.id, late, NOW, OPEN, kiosk_2_key)
    mine = await storage.events.append(tenant.id, late, NOW, OPEN, kiosk_2_key)

    assert [r.error for r in theirs.rejections] == ["session_not_found"]
    assert [r.error for r in mine.rejections] == ["session_not_found"]


# What the memory holds after every kind of batch.


async def test_the_remembered_sessions_are_the_stored_ones_through_every_kind_of_batch(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Risk: the copy a write leaves in memory differs from the row and meters it wrote while
    its Version matches: meters of quantity 0 (int and decimal, new meters: a row of 0 nanos),
    an int meter turning decimal, nano-sized decimals summed, a provisional end moved by late
    events, a charged session repriced batch after batch (charge_revision), a pseudonymised
    subject's events stored without label and data. Five multi-session batches over four such
    sessions, each after the first written from memory in one guarded statement; after each,
    the memory equals a fresh read (session, meter types and Version), and the outcomes and
    state equal a twin world's written the locked way. Holds."""
    on_postgresql(storage_url)
    ways = Ways(monkeypatch)
    read, written = reads(monkeypatch), guarded_writes(monkeypatch)
    await storage.rates.put(tenant.id, COUNSELING)
    await storage.ledger.grant(a_grant(tenant, 10**6, "g-1", "ana"))

    async def world() -> list[Session]:
        active = await stored_session(storage, tenant)
        reaped = await stored_session(storage, tenant, kind="kiosk", subject_id="cid")
        charged = await stored_session(storage, tenant, kind="counseling", subject_id="ana")
        erased = await stored_session(storage, tenant, subject_id="bob")
        await storage.events.append(tenant.id, batch(tap(reaped, 1, 0.5)), NOW, OPEN)
        idle_kiosks = Staleness(default=None, by_kind={"kiosk": NOW})
        closed = await storage.sessions.time_out_idle(tenant.id, idle_kiosks, 10, RATED, NOW, OPEN)
        assert [c.id for c in closed] == [reaped.id]
        await storage.sessions.close(tenant.id, charged.id, Exit(at(3)), RATED, NOW, OPEN)
        assert await storage.ledger.settle(tenant.id, charged.id, 0, 6, at(3)) is not None
        forgetting = Forgetting(Pseudonyms(), subject_id="bob")
        await storage.erasure.erase_sessions(tenant.id, [erased.id], forgetting)
        return [active, reaped, charged, erased]

    plans: list[list[Usage]] = [
        [{"taps": 1}],
        [{"zero": 0}, {"dzero": Decimal("0")}, {"taps": 0}],
        [{"taps": Decimal("0.5")}, {"tiny": Decimal("0.000000001")}],
        [{"tiny": Decimal("0.000000001"), "taps": 2}, {}, {"zero": 0}],
        [{"tiny": Decimal("0.000000007"), "dzero": 3}],
    ]

    def events_of(sessions: list[Session], k: int) -> list[Event]:
        made = []
        for s in sessions:
            for m, meters in enumerate(plans[k]):
                n = 10 * (k + 1) + m
                minutes = 5.0 + n if s is sessions[1] else 0.75  # moves the provisional end
                made.append(
                    Event(s.id, n, "tap", at(minutes), label="l", data={"d": n}, meters=meters)
                )
        return made

    worlds = {True: await world(), False: await world()}
    ways.reset()
    for k in range(len(plans)):
        answers = {}
        for unlocked, sessions in worlds.items():
            ways.unlocked = unlocked
            before, wrote = len(read.answers), len(written.answers)
            outcome = await storage.events.append(
                tenant.id, batch(*events_of(sessions, k)), NOW, OPEN
            )
            if unlocked:
                assert written.answers[wrote:] == [True]
                assert len(read.answers) - before == (1 if k == 0 else 0), k
                recalled = storage.events.remembered.recall(tenant.id, [s.id for s in sessions])
                assert recalled is not None
                for s in sessions:
                    stored, version = await as_stored(storage, tenant, s.id)
                    assert recalled[s.id] == (stored, version), (k, s.id)
                    assert kinds(recalled[s.id][0].usage) == kinds(stored.usage), (k, s.id)
            answers[unlocked] = (
                outcome_of(outcome, sessions),
                await state_of(storage, tenant, sessions),
            )
        assert answers[True] == answers[False], k
    charged = await storage.sessions.get(tenant.id, worlds[True][2].id)
    assert charged.charge_revision == len(plans)


# Whose memory: tenants, several sessions, the clock.


async def test_tenants_sharing_a_session_id_are_remembered_apart(
    storage: Any, storage_url: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Risk: two tenants' sessions of one id, batches alternating between them: one tenant's
    batch starts from the other's remembered copy, or the RETURNING ids (without tenant) mix
    their Versions. Holds: from their starts on, every batch is written from its own memory,
    and each is counted once."""
    on_postgresql(storage_url)
    read, written = reads(monkeypatch), guarded_writes(monkeypatch)
    second, mine, theirs = await sessions_of_one_id(storage, tenant)
    for n in range(1, 7):
        for owner, s, taps in ((tenant, mine, n), (second, theirs, 10 * n)):
            outcome = await storage.events.append(owner.id, batch(tap(s, n, taps=taps)), NOW, OPEN)
            assert (outcome.inserted, outcome.duplicates) == (1, 0)
    assert read.answers == [] and written.answers == [True] * 12
    await counted_once(storage, tenant, mine)
    await counted_once(storage, second, theirs)
    assert (await storage.sessions.get(second.id, theirs.id)).usage == {"taps": 210}


async def test_a_batch_of_remembered_stale_and_unknown_sessions_is_read_whole(
    storage: Any,
    storage_url: str,
    other_process: Any,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Risk: a batch whose sessions are partly remembered (one at a Version another process
    changed since), partly not (one never written here, one that does not exist): the stale
    copy is used for its part, or the fresh write fails to replace it. Holds: the batch is read
    whole and written, its sessions are remembered as written, and the next batch of them goes
    from memory; the unknown session's events are session_not_found."""
    on_postgresql(storage_url)
    read, written = reads(monkeypatch), guarded_writes(monkeypatch)
    stale, fresh = await stored_session(storage, tenant), await stored_session(storage, tenant)
    ghost = a_session(tenant)
    await storage.events.append(tenant.id, batch(tap(stale, 1)), NOW, OPEN)
    await other_process.events.append(tenant.id, batch(tap(stale, 2, taps=5)), NOW, OPEN)
    read.answers.clear()
    written.answers.clear()

    first = await storage.events.append(
        tenant.id, batch(tap(stale, 3), tap(fresh, 1), tap(ghost, 1)), NOW, OPEN
    )
    assert (first.inserted, [r.error for r in first.rejections]) == (2, ["session_not_found"])
    assert (len(read.answers), written.answers) == (1, [True])
    second = await storage.events.append(
        tenant.id, batch(tap(fresh, 2), tap(stale, 4, taps=2)), NOW, OPEN
    )
    assert (second.inserted, len(read.answers), written.answers) == (2, 1, [True, True])
    for s in (stale, fresh):
        await counted_once(storage, tenant, s)
        recalled = storage.events.remembered.recall(tenant.id, [s.id])
        assert recalled is not None and recalled[s.id] == await as_stored(storage, tenant, s.id)


async def test_capacity_and_expiry_of_the_memory_on_a_fake_clock(
    storage: Any,
    storage_url: str,
    other_process: Any,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Risk: a session evicted (capacity) or remembered too long ago (expiry) is still
    recalled, a contested one remembered again within its minute, or not after it; or any of
    these counts an event twice. Holds: evicted and expired sessions are read; a session
    another process wrote is refused once and remembered again; refused twice in a row, it is
    read for the minute and remembered after it; every event is counted once."""
    on_postgresql(storage_url)
    clock = [0.0]
    storage.events.remembered = RememberedSessions(capacity=2, seconds=60, clock=lambda: clock[0])
    read, written = reads(monkeypatch), guarded_writes(monkeypatch)
    a, b, c = [await stored_session(storage, tenant) for _ in range(3)]
    steps: list[tuple[float, Any, Session, int, tuple[int, list[bool]]]] = [
        # (clock, process, session, number, (reads, guarded writes' answers) of the step)
        (0, storage, a, 1, (1, [True])),
        (0, storage, b, 1, (1, [True])),
        (0, storage, c, 1, (1, [True])),  # a evicted
        (1, storage, a, 2, (1, [True])),  # read: b evicted
        (1, storage, a, 3, (0, [True])),
        (62, storage, a, 4, (1, [True])),  # remembered at 1: expired
        (62, storage, a, 5, (0, [True])),
        (62, other_process, a, 6, (1, [True])),
        (63, storage, a, 7, (1, [False, True])),  # refused as remembered once: still remembered
        (63, other_process, a, 8, (1, [False, True])),
        (64, storage, a, 9, (1, [False, True])),  # refused twice in a row: contested at 64
        (65, storage, a, 10, (1, [True])),  # read, and not remembered
        (124, storage, a, 11, (1, [True])),  # 60 s since: still contested
        (124.5, storage, a, 12, (1, [True])),  # remembered now
        (125, storage, a, 13, (0, [True])),
        (125, storage, c, 2, (1, [True])),  # c kept at 0: expired
    ]
    for now, process, s, n, expected in steps:
        clock[0] = now
        read.answers.clear()
        written.answers.clear()
        outcome = await process.events.append(tenant.id, batch(tap(s, n)), NOW, OPEN)
        assert outcome.inserted == 1
        assert (len(read.answers), written.answers) == expected, (now, n)
    for s in (a, b, c):
        await counted_once(storage, tenant, s)
