"""A hostile review of MongoDB's event counting without transactions (adapters/mongodb/events.py,
event_counting.py), made for a2205c5 (since reverted: its waits for other appends' marks were
unsafe) and kept for the defects it found that are older than it.

The guarantees held here: an event an append answers as stored (inserted, or a duplicate: not
among its rejections) is never deleted afterwards (DESIGN.md: "a success answer means the write is
durable"); a session's usage is the sum of its stored events' meters and its event_count their
number.

Forced interleavings run their racers as tasks on the test's loop, each named by a context
variable, and hold the first call of one function by one racer (`Script.around`) between two
real round trips: only the timing is chosen, every step is the code's own.
"""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, InsertOne
from pymongo.asynchronous.collection import AsyncCollection

from adapters.mongodb import event_counting
from application.sessions.record_exit import RecordExitCommand
from domain.events import BatchOutcome, Event
from domain.session import Session
from domain.tenants import Tenant
from domain.usage import Usage, add_into
from tests.contract.builders import NOW, OPEN, at, stored_session, wired
from tests.contract.dying_appends import next_append_dies
from tests.contract.scripted import Script
from tests.contract.test_todays_fixes_review import reap
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)

M = 1_000_000  # bytes: the limit, MAX_QUANTITY, is 1000 M
Batch = list[tuple[int, Event]]
Key = tuple[str, int]


def tap(session: Session, n: int, megabytes: int = 0, minute: float | None = None) -> Event:
    """The session's event `n`, of `megabytes` M bytes, dated minute `n` (or `minute`)."""
    meters: Usage = {"bytes": megabytes * M} if megabytes else {}
    return Event(session.id, n, "tap", at(n if minute is None else minute), meters=meters)


def batch(*events: Event) -> Batch:
    return list(enumerate(events))


def key(event: Event) -> Key:
    return event.session_id, event.sequence_no


async def append(storage: Any, tenant: Tenant, events: Batch) -> BatchOutcome:
    outcome: BatchOutcome = await storage.events.append(tenant.id, events, NOW, OPEN)
    return outcome


def answered_stored(events: Batch, outcome: BatchOutcome) -> set[Key]:
    refused = {r.index for r in outcome.rejections}
    return {key(e) for i, e in events if i not in refused}


def exit_of(tenant: Tenant, session: Session, minute: float) -> Callable[[Any], Awaitable[Any]]:
    """The client's exit of the session at `minute` (the service's clock at minute 60)."""

    async def exit_(storage: Any) -> Any:
        command = RecordExitCommand(tenant.id, session.id, at=at(minute))
        return await wired(storage, FakeClock(at(60))).use_cases().record_exit()(command)

    return exit_


def _nonzero(usage: Usage) -> Usage:
    return {meter: quantity for meter, quantity in usage.items() if quantity}


async def kept_of(storage: Any, tenant: Tenant, sessions: list[Session]) -> dict[str, list[Event]]:
    return {s.id: await storage.events.find(tenant.id, s.id, 10_000) for s in sessions}


async def assert_books_balance(
    storage: Any,
    tenant: Tenant,
    sessions: list[Session],
    answers: list[tuple[Batch, BatchOutcome]],
) -> set[Key]:
    """Each session's usage is the sum of its stored events' meters and its event_count their
    number; every event an answer called stored is stored. Returns the stored events' keys."""
    kept = await kept_of(storage, tenant, sessions)
    keys = {key(e) for events in kept.values() for e in events}
    seen = (answers, {s: [e.sequence_no for e in events] for s, events in kept.items()})
    for session in sessions:
        stored = await storage.sessions.get(tenant.id, session.id)
        total: Usage = {}
        for event in kept[session.id]:
            add_into(total, event.meters)
        assert _nonzero(stored.usage) == _nonzero(total), (session.id, stored.usage, seen)
        assert stored.event_count == len(kept[session.id]), (session.id, stored, seen)
    for n, (events, outcome) in enumerate(answers):
        lost = answered_stored(events, outcome) - keys
        assert not lost, (f"answer {n} calls stored what is deleted", sorted(lost), outcome, seen)
    return keys


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Script:
    # An hour: no mark goes stale within a test unless the test says so.
    monkeypatch.setattr(event_counting, "STALE_AFTER", timedelta(hours=1))
    return Script(monkeypatch)


@on_mongodb
async def test_a_number_repeated_in_a_batch_whose_first_copy_is_refused_when_counted_is_rejected(
    storage: Any, tenant: Tenant, script: Script
) -> None:
    """A batch repeats event 2 (100M) (API.md: a number "repeated in the batch" is a duplicate). The
    session is at 300M when X reads it, 950M when X's command counts (Z's 650M between), so
    the long way refuses event 2 at the count and deletes it: index 0 is rejected for the
    limit, but index 1, sorted as a repeat of a new event, is answered as a duplicate (not
    rejected) of an event that is not stored. (In one transaction, SQL, both copies are
    refused alike: sort_batch judges the repeat on the total with the first copy in it.)"""
    session = await stored_session(storage, tenant)
    await append(storage, tenant, batch(tap(session, 1, 300)))
    twice = tap(session, 2, 100)
    x = batch(twice, twice)
    z = batch(tap(session, 9, 650))
    script.around(AsyncMongoClient, "bulk_write", "X", before=lambda: append(storage, tenant, z))

    answers = await script.run(X=lambda: append(storage, tenant, x))

    assert [r.index for r in answers["X"].rejections][:1] == [0], answers  # refused when counted
    await assert_books_balance(storage, tenant, [session], [(x, answers["X"])])


# --- Finishers: a dead append's batch counted in part, or by two callers deciding apart -------


@on_mongodb
@pytest.mark.parametrize("finisher", ["exit of B", "retry of B's event"])
async def test_finishing_a_dead_append_in_one_session_leaves_its_events_in_another_uncounted(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, finisher: str
) -> None:
    """D stores a1 (session A) and b1 (B) and dies before counting (its marks stale at once). A
    finisher that looks at B only (the exit of B, which finishes B's uncounted events first; a
    retry of b1, which finishes the sessions of the duplicates it met) counts B. Before the
    fix, its cleanup then removed every mark of D's token, a1's too: a1 stayed stored,
    uncounted, and no finisher would ever find it (DESIGN.md: crash safety; the usage is the
    sum of the stored events' meters)."""
    next_append_dies(monkeypatch, lambda write: isinstance(write, InsertOne))
    monkeypatch.setattr(event_counting, "STALE_AFTER", timedelta(seconds=-1))
    a, b = await stored_session(storage, tenant), await stored_session(storage, tenant)
    a1, b1 = tap(a, 1, 10), tap(b, 1, 20)
    with pytest.raises(ConnectionError):
        await append(storage, tenant, batch(a1, b1))

    if finisher == "exit of B":
        await exit_of(tenant, b, 8)(storage)
    else:
        await append(storage, tenant, batch(b1, tap(b, 2, 5)))
    await reap(storage)  # finishes whatever a dead append left marked, tenant-wide

    await assert_books_balance(storage, tenant, [a, b], [])


WEEK = timedelta(days=7)  # the tenant's late-data window (the default)
ENDED_AT = 5  # the session's client exit, minute 5
# Minutes: the late-data window of a session ended at 5 closed a minute before.
AFTER_THE_WINDOW = ENDED_AT + WEEK.total_seconds() / 60 + 1
WITHIN_THE_WINDOW = at(4) + WEEK  # a clock at which an ended session still takes d1


async def dead_d1_of_an_ended_session(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> tuple[Session, Event]:
    """The session ended at minute 5; D stored d1 (10M, dated 4) and died before counting it.
    A finisher on a clock within the window takes d1; one after it refuses d1 as late."""
    session = await stored_session(storage, tenant)
    await exit_of(tenant, session, ENDED_AT)(storage)
    next_append_dies(monkeypatch, lambda write: isinstance(write, InsertOne))
    d1 = tap(session, 1, 10, minute=4)
    with pytest.raises(ConnectionError):
        await storage.events.append(tenant.id, batch(d1), at(6), WEEK)
    return session, d1


@on_mongodb
async def test_two_finishers_of_a_dead_append_deciding_apart_count_what_the_other_deleted(
    storage: Any, tenant: Tenant, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two callers may finish the same dead append's batch, and each deletes what it refuses
    before its guarded count, on its own decision. The session ended at minute 5; D stored d1
    (dated 4) and died. A retry of d1, begun a minute before the late-data window closed,
    meets it as a duplicate and finishes D's batch: d1 is taken. Between its decision and its
    count, the reaper (a minute after the window closed) finishes it too: d1 is late, deleted.
    The retry's guarded count still matches the session (the reaper counted nothing) and
    counts d1: 10M of usage, no event, and the retry answers d1 as stored."""
    monkeypatch.setattr(event_counting, "STALE_AFTER", timedelta(seconds=-1))
    session, d1 = await dead_d1_of_an_ended_session(storage, tenant, monkeypatch)
    # The retry's first update_one is its guarded count of D's batch, decided just before.
    script.around(
        AsyncCollection,
        "update_one",
        "X",
        before=lambda: script.hand_over("x decided", "reaper done"),
    )
    x = batch(d1)

    async def the_reaper() -> None:
        await script.until("x decided")
        try:
            await reap(storage, AFTER_THE_WINDOW)
        finally:
            script.go("reaper done")

    answers = await script.run(
        X=lambda: storage.events.append(tenant.id, x, WITHIN_THE_WINDOW, WEEK), R=the_reaper
    )

    await assert_books_balance(storage, tenant, [session], [(x, answers["X"])])


@on_mongodb
async def test_a_refusal_a_finisher_recorded_and_died_before_deleting_is_deleted_by_the_next(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finisher records what it refuses with its count (`refusals.<token>`), then deletes it:
    dying in between leaves the refused event in the log, still marked. The session ended at
    5; D stored d1 (dated 4) and died. The reaper, a minute after the late-data window closed,
    finishes D's batch (d1 is late), records the refusal and dies before deleting d1. A retry
    of d1 then finds it refused, not stored (it is still in the log, but refused), and the
    reaper's next run deletes it: nothing was counted, and the books balance."""
    monkeypatch.setattr(event_counting, "STALE_AFTER", timedelta(seconds=-1))
    session, d1 = await dead_d1_of_an_ended_session(storage, tenant, monkeypatch)
    deletes = event_counting._delete

    async def dies(*args: Any) -> None:
        raise ConnectionError("the finisher died before deleting")

    monkeypatch.setattr(event_counting, "_delete", dies)
    reaped = await reap(storage, AFTER_THE_WINDOW)
    monkeypatch.setattr(event_counting, "_delete", deletes)
    assert reaped.failures, reaped  # it died after recording the refusal
    assert [e.sequence_no for e in await storage.events.find(tenant.id, session.id, 10)] == [1]

    retry = await storage.events.append(tenant.id, batch(d1), at(AFTER_THE_WINDOW), WEEK)
    await reap(storage, AFTER_THE_WINDOW + 1)

    assert [(r.index, r.error) for r in retry.rejections] == [(0, "late")], retry
    kept = await assert_books_balance(storage, tenant, [session], [(batch(d1), retry)])
    assert kept == set(), kept


@on_mongodb
async def test_an_append_whose_batch_a_finisher_refused_meanwhile_answers_the_refusal(
    storage: Any, tenant: Tenant, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append that stalls long enough (STALE_AFTER) has its batch finished by someone else.
    The session ended at minute 5; X sends d1 (dated 4) within the late-data window and takes
    the long way, a step per command. After X reads the session to count d1, the reaper (a
    minute after the window closed) finishes X's batch whole: d1 is late, refused, deleted,
    and its marks are gone. X finds its batch counted by another and answers d1 as that count
    decided, refused as late: not stored, since it is not."""
    monkeypatch.setattr(event_counting, "STALE_AFTER", timedelta(seconds=-1))
    storage.events._one_command = False
    session = await stored_session(storage, tenant)
    await exit_of(tenant, session, ENDED_AT)(storage)
    # X's first count_documents looks for its marks, after it read the session to count them.
    script.around(
        AsyncCollection,
        "count_documents",
        "X",
        before=lambda: script.hand_over("x read", "reaper done"),
    )
    x = batch(tap(session, 1, 10, minute=4))

    async def the_reaper() -> None:
        await script.until("x read")
        try:
            await reap(storage, AFTER_THE_WINDOW)
        finally:
            script.go("reaper done")

    answers = await script.run(
        X=lambda: storage.events.append(tenant.id, x, at(6), WEEK), R=the_reaper
    )

    assert [(r.index, r.error) for r in answers["X"].rejections] == [(0, "late")], answers
    kept = await assert_books_balance(storage, tenant, [session], [(x, answers["X"])])
    assert kept == set(), kept
