"""A hostile review of 75e6c04 (MongoDB: an append that meets events another append stored and
has not counted yet waits for that count, `polled` up to IN_FLIGHT_WAIT_SECONDS, and answers each
as it decided, a duplicate or refused with the recorded reason; one still undecided then is
answered failed, IN_FLIGHT).

The guarantees held here (DESIGN.md): "a success answer means the write is durable", so an event
an append answered as stored (inserted, or a duplicate: not among its rejections) is never
deleted afterwards; each session's usage is the sum of its stored events' meters and its
event_count their number (assert_books_balance); the wait ends as soon as the counts it waits
for are decided, and never lasts much longer than IN_FLIGHT_WAIT_SECONDS; an event whose fate is
not known when the append answers is answered IN_FLIGHT, to be sent again (README: "it answers
them failed, `in_flight`"), not refused for good.

Two tests failed on 75e6c04, both for one defect, fixed in the commit after it: an event the
batch refused itself (late; a repeat of a number judged over the cap on top of its first copy)
whose fate was still to come kept the batch's reason, a refusal for good, where the README says
`in_flight`; the batch's reason now gives way to IN_FLIGHT. The others are regression tests.

Interleavings are forced on the test's loop: an append that "dies" stores its events marked and
stops (dying_appends), and its count comes when the test runs it (event_counting.finish_batches,
on the dead append's own clock: the append was slow, not dead) or never (it died).
"""

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import InsertOne, UpdateMany, UpdateOne

from adapters.mongodb import event_counting
from adapters.mongodb import events as mongo_events
from adapters.mongodb.event_documents import to_document
from domain.events import BatchOutcome
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, at, stored_session
from tests.contract.dying_appends import counts_later, marked, next_append_dies
from tests.contract.races import Race
from tests.contract.test_met_duplicates_review import (
    AFTER_THE_WINDOW,
    ENDED_AT,
    WEEK,
    Batch,
    append,
    assert_books_balance,
    batch,
    exit_of,
    key,
    tap,
)
from tests.contract.test_stored_before_review import dies

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)

IN_FLIGHT = mongo_events.IN_FLIGHT
WOULD_REACH = "would reach"  # in the reason of a refusal for the meter's cap
MARGIN_SECONDS = 2.0  # a busy machine's slack on top of a wait


async def finish_the_dead(storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    """30 s later: whatever a dead append left marked is finished (as the reaper would)."""
    monkeypatch.setattr(event_counting, "STALE_AFTER", timedelta(seconds=-1))
    await event_counting.finish_stale_batches(storage.events._db, tenant.id, NOW, OPEN)


def answers_of(outcome: BatchOutcome) -> tuple[int, int, list[tuple[int, str]]]:
    return outcome.inserted, outcome.duplicates, [(r.index, r.error) for r in outcome.rejections]


# --- Two young tokens; several sessions; a repeated number ----------------------------------


@on_mongodb
async def test_events_in_flight_of_two_young_appends_are_each_answered_as_their_own_count_decides(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B stored e1 (300M) and C stored e2 (300M), neither counted yet (both younger than
    STALE_AFTER). X sends e1, e2 and a new e3. B's count comes 0.2 s into X's wait, C's never
    (C died): X answers e1 a duplicate, e2 IN_FLIGHT, e3 inserted, after waiting for C about
    IN_FLIGHT_WAIT_SECONDS (1 s here), not for each token in turn. Once C is finished, every
    event X answered as stored is kept and the books balance."""
    monkeypatch.setattr(mongo_events, "IN_FLIGHT_WAIT_SECONDS", 1.0)
    session = await stored_session(storage, tenant)
    e1, e2, e3 = tap(session, 1, 300), tap(session, 2, 300), tap(session, 3, 100)
    await dies(storage, tenant, monkeypatch, batch(e1), NOW, OPEN)
    (of_b,) = await marked(storage, session)
    await dies(storage, tenant, monkeypatch, batch(e2), NOW, OPEN)
    x = batch(e1, e2, e3)

    started = time.monotonic()
    answer, _ = await asyncio.gather(
        append(storage, tenant, x), counts_later(storage, tenant, [of_b], 0.2)
    )
    waited = time.monotonic() - started

    assert answers_of(answer) == (1, 1, [(1, IN_FLIGHT)]), answer
    assert 1.0 <= waited < 1.0 + MARGIN_SECONDS, waited
    await finish_the_dead(storage, tenant, monkeypatch)
    kept = await assert_books_balance(storage, tenant, [session], [(x, answer)])
    assert kept == {key(e1), key(e2), key(e3)}, kept


def dies_after_counting_the_first_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next append's one command inserts its events and counts its first session, then its
    process dies (the other sessions uncounted, every mark left)."""
    counts = 0

    def keeps(write: Any) -> bool:
        nonlocal counts
        if isinstance(write, UpdateOne):
            counts += 1
            return counts == 1
        return isinstance(write, InsertOne)

    next_append_dies(monkeypatch, keeps)


@on_mongodb
async def test_a_batch_over_sessions_counted_and_in_flight_answers_each_session_as_decided(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B's batch stores a1 (session A) and b1 (session B) under one young token and dies after
    counting A only. X sends a1, b1 and c1 (new, session C). A's count is decided (B's token in
    A's `counting`), B's is not: X answers a1 a duplicate, b1 IN_FLIGHT, c1 inserted (the
    token is judged per session). Once B's batch is finished, the books balance."""
    monkeypatch.setattr(mongo_events, "IN_FLIGHT_WAIT_SECONDS", 0.2)
    a, b, c = [await stored_session(storage, tenant) for _ in range(3)]
    a1, b1, c1 = tap(a, 1, 100), tap(b, 1, 100), tap(c, 1, 100)
    dies_after_counting_the_first_session(monkeypatch)
    with pytest.raises(ConnectionError):
        await append(storage, tenant, batch(a1, b1))
    counted_a = await storage.sessions.get(tenant.id, a.id)
    assert counted_a.event_count == 1, counted_a
    x = batch(a1, b1, c1)

    answer = await append(storage, tenant, x)

    assert answers_of(answer) == (1, 1, [(1, IN_FLIGHT)]), answer
    await finish_the_dead(storage, tenant, monkeypatch)
    kept = await assert_books_balance(storage, tenant, [a, b, c], [(x, answer)])
    assert kept == {key(a1), key(b1), key(c1)}, kept


@on_mongodb
@pytest.mark.parametrize("count", ["never", "over-the-cap"])
async def test_a_number_repeated_in_a_batch_while_in_flight_is_answered_alike_twice(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, count: str
) -> None:
    """B stored e1 (600M) and has not counted it. X sends e1 twice (API.md: a number repeated
    in the batch is a duplicate of the first); the session is empty when X reads it, so X takes
    e1 and its insert meets B's. If B's count never comes (B died), both copies are IN_FLIGHT;
    if, during X's wait, e2 (500M) is stored and counted and then B's count refuses e1 for the
    cap, both copies are refused for it. Neither copy is answered stored, and both alike.
    On 75e6c04, when B's count never comes, X answers index 0 IN_FLIGHT but index 1 refused
    for the cap ("would reach"), and e1 (600M, within the cap) is kept once B is finished:
    sort_batch judges the repeat's meters on top of the first copy's (1200M) and refuses it
    itself, and `append` gives IN_FLIGHT only to indexes the batch did not refuse (as for
    "late" below). Sent again, the client's index 0 is a duplicate; index 1 it dropped."""
    monkeypatch.setattr(mongo_events, "IN_FLIGHT_WAIT_SECONDS", 0.2 if count == "never" else 3.0)
    session = await stored_session(storage, tenant)
    e1, e2 = tap(session, 1, 600), tap(session, 2, 500)
    await dies(storage, tenant, monkeypatch, batch(e1), NOW, OPEN)
    (of_b,) = await marked(storage, session)
    x = batch(e1, e1)

    if count == "never":
        answer = await append(storage, tenant, x)
        assert answers_of(answer) == (0, 0, [(0, IN_FLIGHT), (1, IN_FLIGHT)]), answer
        await finish_the_dead(storage, tenant, monkeypatch)
        answers = [(x, answer)]
        expected = {key(e1)}
    else:

        async def e2_then_bs_count() -> BatchOutcome:
            await asyncio.sleep(0.2)
            stored = await append(storage, tenant, batch(e2))
            await counts_later(storage, tenant, [of_b], 0)
            return stored

        answer, of_e2 = await asyncio.gather(append(storage, tenant, x), e2_then_bs_count())
        assert (answer.inserted, answer.duplicates) == (0, 0), answer
        assert [r.index for r in answer.rejections] == [0, 1], answer
        assert all(WOULD_REACH in r.error for r in answer.rejections), answer
        answers = [(x, answer), (batch(e2), of_e2)]
        expected = {key(e2)}
    kept = await assert_books_balance(storage, tenant, [session], answers)
    assert kept == expected, kept


# --- A mark that turns stale during the wait -------------------------------------------------


@on_mongodb
async def test_a_mark_that_turns_stale_during_the_wait_is_finished_and_answered_as_decided(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B stored e1 (600M) and died, its mark young. X sends e1 again into the empty session:
    its insert meets B's, and X waits (the real IN_FLIGHT_WAIT_SECONDS, 5 s). 0.3 s in, e2
    (500M) is stored and counted, and B's mark turns stale (STALE_AFTER passed): X's next look
    finishes B's batch, whose count refuses e1 for the cap, and X answers e1 refused then,
    not IN_FLIGHT after the full wait."""
    session = await stored_session(storage, tenant)
    e1, e2 = tap(session, 1, 600), tap(session, 2, 500)
    await dies(storage, tenant, monkeypatch, batch(e1), NOW, OPEN)
    x = batch(e1)

    async def e2_then_stale() -> BatchOutcome:
        await asyncio.sleep(0.3)
        stored = await append(storage, tenant, batch(e2))
        monkeypatch.setattr(event_counting, "STALE_AFTER", timedelta(seconds=-1))
        return stored

    started = time.monotonic()
    answer, of_e2 = await asyncio.gather(append(storage, tenant, x), e2_then_stale())
    waited = time.monotonic() - started

    assert (answer.inserted, answer.duplicates) == (0, 0), answer
    ((index, why),) = answers_of(answer)[2]
    assert index == 0 and WOULD_REACH in why, answer
    assert waited < mongo_events.IN_FLIGHT_WAIT_SECONDS - 1, waited
    answers = [(x, answer), (batch(e2), of_e2)]
    kept = await assert_books_balance(storage, tenant, [session], answers)
    assert kept == {key(e2)}, kept


# --- An event the batch refuses itself, that a slower append stored --------------------------


@on_mongodb
async def test_an_event_the_batch_refuses_as_late_while_another_append_stores_it_is_not_refused(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session ended at 5. B, on a clock within the late-data window, stored d1 (10M,
    dated 4) and has not counted it yet. X sends d1 after the window: X's batch refuses d1 as
    late, and X waits for B's count (IN_FLIGHT_WAIT_SECONDS, 0.2 s here), which does not come
    in time: B is slower than that, not dead. B's count, on B's clock, then takes d1: d1 is
    stored and counted. X's answer must not be a final "late" for an event that is kept: its
    fate was not known when X answered, which the commit answers IN_FLIGHT ("send it again",
    README) for an event X's insert met, and must answer alike for one X's batch refused
    (sent again, it is a duplicate). On 75e6c04 X answers (0, "late"): `_stored_before` puts
    IN_FLIGHT in `refused_before`, but `append` only applies it to indexes not already
    refused by the batch, so the batch's own reason stands."""
    monkeypatch.setattr(mongo_events, "IN_FLIGHT_WAIT_SECONDS", 0.2)
    session = await stored_session(storage, tenant)
    await exit_of(tenant, session, ENDED_AT)(storage)
    d1 = tap(session, 1, 10, minute=4)
    await dies(storage, tenant, monkeypatch, batch(d1), at(6), WEEK)
    (of_b,) = await marked(storage, session)
    x = batch(d1)

    answer = await storage.events.append(tenant.id, x, at(AFTER_THE_WINDOW), WEEK)
    await counts_later(storage, tenant, [of_b], 0, at(6), WEEK)  # B, slower than X's wait

    kept = await assert_books_balance(storage, tenant, [session], [(x, answer)])
    assert kept == {key(d1)}, kept
    assert answers_of(answer) == (0, 0, [(0, IN_FLIGHT)]), answer


# --- A race: overlapping batches over two sessions near the cap ------------------------------


@on_mongodb
async def test_overlapping_batches_over_two_sessions_near_the_cap_keep_all_they_answer_stored(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Six batches sent at once, each five numbers of 1-10 of session A and the same of B,
    overlapping the next batch's, each event 150M bytes: the cap takes six of each session's
    ten. Every event an answer calls inserted or a duplicate is kept, and each session's usage
    is the sum of those kept (the counts an append waits for are judged per session)."""
    a, b = await stored_session(storage, tenant), await stored_session(storage, tenant)
    batches: list[Batch] = [
        batch(*(tap(s, n, 150) for n in range(k, k + 5) for s in (a, b))) for k in range(1, 7)
    ]

    outcomes = await race(
        *[lambda s, x=x: s.events.append(tenant.id, x, NOW, OPEN) for x in batches]
    )

    answers = list(zip(batches, outcomes, strict=True))
    kept = await assert_books_balance(storage, tenant, [a, b], answers)
    assert len(kept) == 12, (kept, outcomes)
    assert not [r for o in outcomes for r in o.rejections if r.error == IN_FLIGHT], outcomes


# --- Found by mutation testing: each event's fate, whatever comes before it ---------------


@on_mongodb
async def test_an_event_the_batch_refuses_that_a_young_append_counted_before_dying_is_a_duplicate(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session ended at 5. B, within the late-data window, stored d1 (dated 4) and counted
    it, and died before removing its mark (younger than STALE_AFTER). X sends d1 after the
    window: X's batch refuses it as late, but it is stored and counted, so it is a duplicate
    (API.md: already stored), not waited for (its count is decided) and not refused."""
    session = await stored_session(storage, tenant)
    await exit_of(tenant, session, ENDED_AT)(storage)
    d1 = tap(session, 1, 10, minute=4)
    next_append_dies(monkeypatch, lambda write: not isinstance(write, UpdateMany))
    with pytest.raises(ConnectionError):
        await storage.events.append(tenant.id, batch(d1), at(6), WEEK)
    x = batch(d1)

    answer = await storage.events.append(tenant.id, x, at(AFTER_THE_WINDOW), WEEK)

    assert answers_of(answer) == (0, 1, []), answer
    kept = await assert_books_balance(storage, tenant, [session], [(x, answer)])
    assert kept == {key(d1)}, kept


@on_mongodb
async def test_an_event_refused_when_counted_is_answered_so_after_one_in_flight(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B stored d1 and died before counting it (younger than STALE_AFTER). Another append
    stored d2, and its count refused d2 (recorded on the session) before it died, d2 not
    deleted yet. X sends d1 then d2: d1 is in flight, and d2 is answered refused with the
    recorded reason, not a duplicate: each event met is judged, whatever is in flight before
    it."""
    monkeypatch.setattr(mongo_events, "IN_FLIGHT_WAIT_SECONDS", 0.2)
    session = await stored_session(storage, tenant)
    d1, d2 = tap(session, 1, 10), tap(session, 2, 10)
    await dies(storage, tenant, monkeypatch, batch(d1), NOW, OPEN)
    token, db = ObjectId(), storage.events._db
    await db["events"].insert_one({**to_document(tenant.id, d2), "batch": token})
    refused = {"$set": {f"refusals.{token}": [[2, "late"]]}}
    await db["sessions"].update_one({"id": session.id}, refused)
    x = batch(d1, d2)

    answer = await append(storage, tenant, x)

    assert answers_of(answer) == (0, 0, [(0, IN_FLIGHT), (1, "late")]), answer
    await finish_the_dead(storage, tenant, monkeypatch)
    kept = await assert_books_balance(storage, tenant, [session], [(x, answer)])
    assert kept == {key(d1)}, kept


@on_mongodb
async def test_a_copy_of_an_event_refused_when_counted_is_not_taken_for_stored_near_the_cap(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """d3 (850M) is counted. Another append stored d2 (100M), and its count refused d2
    (recorded on the session with its token) before it died, d2 not deleted yet and still
    marked. X sends d2 and d4 (100M): d4 would reach the meter's cap, so d2 is looked up
    among the events stored and counted (a copy of one of those adds nothing to the total).
    It is not one of them: it is answered refused with the recorded reason, not a duplicate
    of an event about to be deleted."""
    session = await stored_session(storage, tenant)
    d2, d3, d4 = tap(session, 2, 100), tap(session, 3, 850), tap(session, 4, 100)
    await append(storage, tenant, batch(d3))
    token, db = ObjectId(), storage.events._db
    await db["events"].insert_one({**to_document(tenant.id, d2), "batch": token})
    counted_refusing = {"$set": {f"refusals.{token}": [[2, "late"]]}, "$push": {"counting": token}}
    await db["sessions"].update_one({"id": session.id}, counted_refusing)
    x = batch(d2, d4)

    answer = await append(storage, tenant, x)

    assert answers_of(answer)[2][:1] == [(0, "late")], answer
    await finish_the_dead(storage, tenant, monkeypatch)
    await assert_books_balance(storage, tenant, [session], [(x, answer)])
