"""A hostile review of e71addc (MongoDB: a count records what it refused, `refusals.<token>` on the
session, so two finishers of one dead batch decide once; a retry answers what finishing refused
as rejections; lookups take a recorded-refused event for neither counted nor stored).

The guarantees held here (DESIGN.md): each session's usage is the sum of its stored events'
meters and its event_count their number, after any interleaving and after the reaper finished
everything; "a success answer means the write is durable", so an event an append answered as
stored (inserted, or a duplicate: not among its rejections) is in the log afterwards; no refused
event stays in the log for good; a usual batch is still two round trips.

Forced interleavings use `Script` (scripted.py): a racer is held at the first call of one
function, between two real round trips, while another runs; every step is the code's own. The
four defects the review found (a retry answering as a duplicate an event a count refused, three
ways; an export carrying events no session counted) were mended in the commit after e71addc;
every test stays as a regression test.
"""

import inspect
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from bson import ObjectId
from pymongo import InsertOne
from pymongo.asynchronous.collection import AsyncCollection

from adapters.mongodb import event_counting
from adapters.mongodb import events as mongo_events
from adapters.mongodb.documents import Document
from domain.events import Event
from domain.session import Session
from domain.tenants import Tenant
from domain.usage import Usage, add_into
from tests.conftest import MongoDatabases, open_storage
from tests.contract.builders import NOW, OPEN, at, stored_session
from tests.contract.dying_appends import next_append_dies
from tests.contract.erasure_builders import erase
from tests.contract.scripted import Script
from tests.contract.test_met_duplicates_review import (
    AFTER_THE_WINDOW,
    ENDED_AT,
    WEEK,
    WITHIN_THE_WINDOW,
    assert_books_balance,
    batch,
    dead_d1_of_an_ended_session,
    exit_of,
    kept_of,
    key,
    tap,
)
from tests.contract.test_todays_fixes_review import reap
from tests.integration.test_mongodb_round_trips import Commands, watched_storage

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)


@pytest.fixture
def script(stale_at_once: None, monkeypatch: pytest.MonkeyPatch) -> Script:
    """Forced interleavings (test_met_duplicates_review's fixture), with marks stale at once."""
    return Script(monkeypatch)


async def dead_over_the_limit_once_finished(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> tuple[Session, Event]:
    """Event 1 (850M) counted; D stored event 2 (100M, within the limit then) and died; event 3
    (60M) counted after: finishing D now refuses 2 for the meter limit (1010M)."""
    session = await stored_session(storage, tenant)
    await storage.events.append(tenant.id, batch(tap(session, 1, 850)), NOW, OPEN)
    next_append_dies(monkeypatch, lambda write: isinstance(write, InsertOne))
    d = tap(session, 2, 100)
    with pytest.raises(ConnectionError):
        await storage.events.append(tenant.id, batch(d), NOW, OPEN)
    third = await storage.events.append(tenant.id, batch(tap(session, 3, 60)), NOW, OPEN)
    assert (third.inserted, third.rejections) == (1, []), third
    return session, d


async def dead_batch_over_two_sessions(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> tuple[Session, Session, Event, Event]:
    """D stored a1 (session A, ended at 5, dated 4) and b1 (B, active, dated 4) and died."""
    a = await stored_session(storage, tenant)
    await exit_of(tenant, a, ENDED_AT)(storage)
    b = await stored_session(storage, tenant)
    next_append_dies(monkeypatch, lambda write: isinstance(write, InsertOne))
    a1, b1 = tap(a, 1, 10, minute=4), tap(b, 1, 20, minute=4)
    with pytest.raises(ConnectionError):
        await storage.events.append(tenant.id, batch(a1, b1), at(6), WEEK)
    return a, b, a1, b1


def retry(storage: Any, tenant: Tenant, events: Any, now: Any = WITHIN_THE_WINDOW) -> Any:
    return lambda: storage.events.append(tenant.id, events, now, WEEK)


# --- A retry that meets a dead batch another finisher refused and deleted -------------------


@on_mongodb
@pytest.mark.usefixtures("stale_at_once")
async def test_a_retry_finishing_a_batch_whose_marks_went_meanwhile_does_not_answer_a_refused_event(
    storage: Any, tenant: Tenant, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry X of d1 (within the window) meets d1 stored by the dead append D and finishes D's
    batch: `_count_session` reads the session (nothing decided yet), then looks for D's marks.
    In between, the reaper (after the window) finishes D: d1 is late, recorded refused, deleted,
    the marks removed. X finds the marks gone, takes that as "counted by another", and answers
    d1 as a duplicate, though the session it could read says d1 was refused and d1 is gone.
    DESIGN.md: a success answer means the write is durable; so X must answer d1 refused."""
    session, d1 = await dead_d1_of_an_ended_session(storage, tenant, monkeypatch)

    # X's first count_documents is its finisher's look for D's marks, after reading the session.
    async def the_reaper_in_between() -> None:
        # In it, or in mutmut's copy of it (make mutants: x__count_session__mutmut_orig).
        assert any("_count_session" in frame.function for frame in inspect.stack())
        await reap(storage, AFTER_THE_WINDOW)

    script.around(AsyncCollection, "count_documents", "X", before=the_reaper_in_between)
    x = batch(d1)

    answers = await script.run(X=retry(storage, tenant, x))
    await reap(storage, AFTER_THE_WINDOW + 1)

    await assert_books_balance(storage, tenant, [session], [(x, answers["X"])])


@on_mongodb
@pytest.mark.usefixtures("stale_at_once")
async def test_a_retry_whose_met_batch_another_finished_after_its_insert_does_not_answer_it_stored(
    storage: Any, tenant: Tenant, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry X of d1 meets d1 (stored by the dead append D) as a duplicate at its insert. Before
    X looks for dead batches among the sessions it met (finish_stale_batches), the reaper (after
    the window) finishes D: d1 refused as late, recorded on the session, deleted. X's look then
    finds no marks, so no `met_refused`, and X answers d1 as a duplicate of a deleted event.
    e71addc: "a retry that finishes a dead batch it met now answers the met events that
    finishing refused as rejections" -- here another caller did the finishing."""
    session, d1 = await dead_d1_of_an_ended_session(storage, tenant, monkeypatch)
    script.around(
        mongo_events, "finish_stale_batches", "X", before=lambda: reap(storage, AFTER_THE_WINDOW)
    )
    x = batch(d1)

    answers = await script.run(X=retry(storage, tenant, x))
    await reap(storage, AFTER_THE_WINDOW + 1)

    await assert_books_balance(storage, tenant, [session], [(x, answers["X"])])


M = 1_000_000


@on_mongodb
@pytest.mark.usefixtures("stale_at_once")
@pytest.mark.parametrize("why", ["late", "meter limit"])
async def test_a_retry_refusing_an_undecided_event_of_a_dead_batch_does_not_call_it_stored(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    """A dead append D stored d (uncounted; its marks stale, so any caller may finish it). A retry
    Y of d refuses it on its own decision (late on its clock; or the meter limit: 910M counted
    since D died, d 100M) and, since d is in the log, `_stored` calls it stored before: Y answers it as a
    duplicate without finishing D. Since e71addc `_stored` leaves out events recorded refused,
    but not those not decided yet: the reaper then finishes D, refuses d for the same reason
    and deletes it. DESIGN.md: a success answer means the write is durable."""
    if why == "late":
        session, d = await dead_d1_of_an_ended_session(storage, tenant, monkeypatch)
        now, window, reaper_at = at(AFTER_THE_WINDOW), WEEK, AFTER_THE_WINDOW + 1
    else:
        session, d = await dead_over_the_limit_once_finished(storage, tenant, monkeypatch)
        now, window, reaper_at = NOW, OPEN, 95
    y = batch(d)

    answer = await storage.events.append(tenant.id, y, now, window)
    await reap(storage, reaper_at)

    await assert_books_balance(storage, tenant, [session], [(y, answer)])


# --- Finishers deciding apart, dying, spanning sessions (regressions) ------------------------


@on_mongodb
@pytest.mark.usefixtures("stale_at_once")
async def test_three_finishers_deciding_apart_all_follow_the_first_recorded_decision(
    storage: Any, tenant: Tenant, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two retries X and Y of d1 (within the window: they take it) both finish D's batch and are
    held after deciding, before their guarded counts; the reaper (after the window) finishes it
    in between: d1 late, recorded, deleted. Both counts then fail (refusals.<token> exists) and
    both take the recorded decision: d1 answered refused by both, nothing counted."""
    session, d1 = await dead_d1_of_an_ended_session(storage, tenant, monkeypatch)

    def decided(racer: str) -> Callable[[], Awaitable[None]]:
        return lambda: script.hand_over(f"{racer} decided", "reaper done")

    for racer in ("X", "Y"):
        script.around(AsyncCollection, "update_one", racer, before=decided(racer))

    async def the_reaper() -> None:
        await script.until("X decided")
        await script.until("Y decided")
        try:
            await reap(storage, AFTER_THE_WINDOW)
        finally:
            script.go("reaper done")

    x, y = batch(d1), batch(d1)
    answers = await script.run(
        X=retry(storage, tenant, x), Y=retry(storage, tenant, y), R=the_reaper
    )
    await reap(storage, AFTER_THE_WINDOW + 1)

    for name in ("X", "Y"):
        assert [(r.index, r.error) for r in answers[name].rejections] == [(0, "late")], answers
    kept = await assert_books_balance(
        storage, tenant, [session], [(x, answers["X"]), (y, answers["Y"])]
    )
    assert kept == set(), kept


class Dies(Exception):
    pass


@on_mongodb
@pytest.mark.usefixtures("stale_at_once")
@pytest.mark.parametrize(
    "dies", ["after recording", "before unmarking", "before pulling the token"]
)
async def test_a_finisher_dying_at_any_step_of_a_batch_spanning_two_sessions_loses_nothing(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, dies: str
) -> None:
    """D stored a1 (session A, ended at 5, dated 4) and b1 (B, active) and died. The reaper after
    A's window finishes D (a1 late, b1 taken) and dies at one step: after recording A's refusal
    (before deleting a1), before removing the marks, before pulling the token. A retry of a1 and
    b1 then, and the reaper's next run: a1 answered refused and gone, b1 stored and counted
    once, the books balance."""
    a, b, a1, b1 = await dead_batch_over_two_sessions(storage, tenant, monkeypatch)

    def at_step(real: Any, step: str) -> Any:
        async def dying(*args: Any, **kwargs: Any) -> Any:
            if dies == step and _is_step(args, step):
                raise Dies(step)
            return await real(*args, **kwargs)

        return dying

    with monkeypatch.context() as dying:
        if dies == "after recording":
            dying.setattr(event_counting, "_delete", at_step(event_counting._delete, dies))
        else:
            dying.setattr(
                AsyncCollection, "update_many", at_step(AsyncCollection.update_many, dies)
            )
        reaped = await reap(storage, AFTER_THE_WINDOW)
    assert reaped.failures, reaped

    events = batch(a1, b1)
    answer = await storage.events.append(tenant.id, events, at(AFTER_THE_WINDOW), WEEK)
    await reap(storage, AFTER_THE_WINDOW + 1)

    assert [(r.index, r.error) for r in answer.rejections] == [(0, "late")], answer
    kept = await assert_books_balance(storage, tenant, [a, b], [(events, answer)])
    assert kept == {key(b1)}, kept
    assert await storage.events._db["events"].count_documents({"batch": {"$exists": True}}) == 0


def _is_step(args: tuple[Any, ...], step: str) -> bool:
    if step == "after recording":
        return True
    query = args[1] if len(args) > 1 else {}
    return ("batch" if step == "before unmarking" else "counting") in query


@on_mongodb
@pytest.mark.usefixtures("stale_at_once")
async def test_finishers_given_each_one_session_of_a_dead_batch_decide_each_session_once(
    storage: Any, tenant: Tenant, script: Script, monkeypatch: pytest.MonkeyPatch
) -> None:
    """D stored a1 (A, ended at 5, dated 4) and b1 (B, active), and died. A retry of a1 after A's
    window (it finishes A only: a1 late, recorded, deleted) is held before its guarded count
    while the exit of B (it finishes B only) and a retry of b1 run; then the reaper. Each
    session is decided once: a1 refused, b1 counted once, the books balance."""
    a, b, a1, b1 = await dead_batch_over_two_sessions(storage, tenant, monkeypatch)
    x, z = batch(a1), batch(b1)

    async def others() -> None:
        await exit_of(tenant, b, 8)(storage)
        answers["Z"] = await storage.events.append(tenant.id, z, at(AFTER_THE_WINDOW), WEEK)

    answers: dict[str, Any] = {}
    script.around(AsyncCollection, "update_one", "X", before=others)
    answers |= await script.run(X=retry(storage, tenant, x, at(4) + WEEK))
    await reap(storage, AFTER_THE_WINDOW + 1)

    await assert_books_balance(storage, tenant, [a, b], [(x, answers["X"]), (z, answers["Z"])])
    kept = await kept_of(storage, tenant, [a, b])
    assert [e.sequence_no for e in kept[b.id]] == [1], kept


# --- Other code that reads or writes the session documents ---------------------------------


async def refusal_recorded_not_deleted(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> tuple[Session, Event]:
    """The reaper (after the window) finishes D's batch: d1 recorded refused (late), then the
    reaper dies before deleting it: d1 is in the log, marked, refused."""
    session, d1 = await dead_d1_of_an_ended_session(storage, tenant, monkeypatch)

    async def dies(*args: Any) -> None:
        raise ConnectionError("the finisher died before deleting")

    with monkeypatch.context() as dying:
        dying.setattr(event_counting, "_delete", dies)
        reaped = await reap(storage, AFTER_THE_WINDOW)
    assert reaped.failures, reaped
    found = await storage.events._db["sessions"].find_one({"id": session.id})
    assert event_counting.refused_when_counted(found, _token_of(found), 1), found
    return session, d1


def _token_of(found: Document) -> Any:
    (token,) = found["refusals"]
    return ObjectId(token)


@on_mongodb
@pytest.mark.usefixtures("stale_at_once")
async def test_erasing_the_subject_while_a_refusal_awaits_its_deletion_keeps_the_books(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """d1 is recorded refused and still in the log when the session's subject is erased; a retry
    of d1 and the reaper's next run follow: d1 answered refused and gone, the books balance,
    the session erased."""
    session, d1 = await refusal_recorded_not_deleted(storage, tenant, monkeypatch)

    await erase(storage, tenant, "user-1")
    answer = await storage.events.append(tenant.id, batch(d1), at(AFTER_THE_WINDOW), WEEK)
    await reap(storage, AFTER_THE_WINDOW + 1)

    assert [(r.index, r.error) for r in answer.rejections] == [(0, "late")], answer
    kept = await assert_books_balance(storage, tenant, [session], [(batch(d1), answer)])
    assert kept == set(), kept
    erased = await storage.sessions.get(tenant.id, session.id)
    assert erased.subject_id != "user-1", erased


@pytest.fixture
def other_database(mongodb_databases: MongoDatabases) -> Iterator[str]:
    with mongodb_databases.fresh() as url:
        yield url


def _books_of(records: list[Any]) -> dict[str, tuple[Usage, int]]:
    """Per exported session: the sum of its exported events' meters, and their number."""
    books: dict[str, tuple[Usage, int]] = {}
    for record in records:
        if isinstance(record, Event):
            total, n = books.setdefault(record.session_id, ({}, 0))
            add_into(total, record.meters)
            books[record.session_id] = (total, n + 1)
    return books


def _nonzero(usage: Usage) -> Usage:
    return {m: q for m, q in usage.items() if q != Decimal(0)}


@on_mongodb
@pytest.mark.usefixtures("stale_at_once")
async def test_a_tenant_exported_while_a_refusal_awaits_its_deletion_imports_with_balanced_books(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, other_database: str
) -> None:
    """d1 is recorded refused (the session's usage holds none of it) and still in the log, marked,
    when the tenant is exported. The export carries d1 as a stored event; imported into another
    store, it loses its mark and the session its `refusals`: d1 is then an ordinary stored event
    that no finisher will ever find, outside the usage for good (DESIGN.md: usage is the sum of
    the stored events' meters; the reaper's runs of the new store change nothing)."""
    session, _ = await refusal_recorded_not_deleted(storage, tenant, monkeypatch)

    records = [r async for r in storage.archive.export(tenant.id)]
    other = open_storage(other_database)
    try:
        await other.archive.restore(tenant.id, records)
        await reap(other, AFTER_THE_WINDOW + 1)
        imported = await other.sessions.get(tenant.id, session.id)
        kept = await other.events.find(tenant.id, session.id, 10)
    finally:
        await other.close()

    total: Usage = {}
    for event in kept:
        add_into(total, event.meters)
    seen = (imported.usage, imported.event_count, [e.sequence_no for e in kept])
    assert (_nonzero(imported.usage), imported.event_count) == (_nonzero(total), len(kept)), seen


# --- The fast path -------------------------------------------------------------------------


@on_mongodb
@pytest.mark.usefixtures("stale_at_once")
async def test_a_usual_batch_into_a_session_with_recorded_refusals_is_two_round_trips(
    storage_url: str, storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session B whose dead batch the reaper finished with a refusal recorded (refusals.<token>
    kept on the document) takes a usual batch of 100 new events in two round trips: `find
    sessions`, one `bulkWrite` (tests/integration/test_mongodb_round_trips.py)."""
    session, _ = await dead_over_the_limit_once_finished(storage, tenant, monkeypatch)
    # The session is active: finishing refuses 2 for the meter limit, and records it.
    await event_counting.finish_stale_batches(storage.events._db, tenant.id, NOW, OPEN)
    found = await storage.events._db["sessions"].find_one({"id": session.id})
    assert found["refusals"], found

    commands = Commands()
    watched = watched_storage(storage_url, commands)
    try:
        await watched.events.append(tenant.id, batch(tap(session, 4)), NOW, OPEN)  # warm-up
        commands.take()
        usual = batch(*(tap(session, n) for n in range(5, 105)))
        outcome = await watched.events.append(tenant.id, usual, NOW, OPEN)
        sent = commands.take()
    finally:
        await watched.close()

    assert (outcome.inserted, outcome.rejections) == (100, []), outcome
    assert sent == ["find sessions", "bulkWrite"], sent
