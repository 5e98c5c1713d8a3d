"""EventLog contract: each (session, sequence number) once, usage counted once, gaps visible."""

from decimal import Decimal
from typing import Any

import pytest

from domain.credits import EntryKind, MeterRate, Rate, Rounding
from domain.events import Event, EventRejection, admission_of
from domain.session import Exit, Session
from domain.tenants import Access, Role, Tenant
from tests.contract.builders import (
    NOW,
    OPEN,
    SHUT,
    a_session,
    add_tenant,
    at,
    batch,
    event,
    stored_session,
    wired,
)
from tests.contract.races import Call, Race
from tests.contract.test_met_duplicates_review import assert_books_balance
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


async def test_stored_events_read_back_in_sequence_order(storage: Any, tenant: Tenant) -> None:
    session = await stored_session(storage, tenant)
    third = event(
        session,
        3,
        type="analysis",
        category="vision",
        label="red",
        data={"score": 0.93, "tags": ["a", "b"]},
        meters={"cost_usd": Decimal("0.0042")},
    )
    first = event(session, 1, type="screen_enter", data={"screen": "intro"})
    second = event(session, 2, meters={"tokens": 120})

    outcome = await storage.events.append(tenant.id, batch(third, first, second), NOW, OPEN)

    assert (outcome.inserted, outcome.duplicates, outcome.rejections) == (3, 0, [])
    assert await storage.events.find(tenant.id, session.id, limit=10) == [first, second, third]


async def test_meters_of_inserted_events_add_up_exactly_in_the_session_usage(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    events = [
        event(session, n, meters={"cost_usd": Decimal("0.1"), "tokens": 7}) for n in range(1, 11)
    ]

    await storage.events.append(tenant.id, batch(*events), NOW, OPEN)

    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.usage == {"cost_usd": Decimal("1"), "tokens": 70}
    assert isinstance(stored.usage["cost_usd"], Decimal)
    assert isinstance(stored.usage["tokens"], int)
    assert stored.event_count == 10


async def test_a_retried_batch_inserts_nothing_twice(storage: Any, tenant: Tenant) -> None:
    session = await stored_session(storage, tenant)
    events = batch(*(event(session, n, meters={"photos": 1}) for n in (1, 2, 3)))
    await storage.events.append(tenant.id, events, NOW, OPEN)

    outcome = await storage.events.append(tenant.id, events, NOW, OPEN)

    assert (outcome.inserted, outcome.duplicates, outcome.failed) == (0, 3, 0)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.usage == {"photos": 3}
    assert stored.event_count == 3


async def test_a_batch_resent_with_more_events_counts_only_those_not_stored_before(
    storage: Any, tenant: Tenant
) -> None:
    resent, fresh = await stored_session(storage, tenant), await stored_session(storage, tenant)
    taken = {"photos": 1, "seconds": Decimal("0.5")}
    await storage.events.append(
        tenant.id, batch(*(event(resent, n, meters=taken) for n in (1, 2))), NOW, OPEN
    )

    outcome = await storage.events.append(
        tenant.id,
        batch(*(event(s, n, meters=taken) for s in (resent, fresh) for n in (1, 2, 3))),
        NOW,
        OPEN,
    )

    assert (outcome.inserted, outcome.duplicates, outcome.failed) == (4, 2, 0)
    for session in (resent, fresh):
        stored = await storage.sessions.get(tenant.id, session.id)
        assert stored.usage == {"photos": 3, "seconds": Decimal("1.5")}
        assert (stored.event_count, stored.max_sequence_no) == (3, 3)


async def test_a_batch_retried_after_its_session_ended_is_all_duplicates_even_when_late(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    events = batch(*(event(session, n, meters={"taps": 1}) for n in (1, 2)))
    await storage.events.append(tenant.id, events, NOW, OPEN)
    await storage.sessions.close(tenant.id, session.id, Exit(at=at(5)), frozenset(), NOW, SHUT)

    outcome = await storage.events.append(tenant.id, events, NOW, SHUT)

    assert (outcome.inserted, outcome.duplicates, outcome.rejections) == (0, 2, [])
    assert (await storage.sessions.get(tenant.id, session.id)).usage == {"taps": 2}


async def test_late_events_name_the_start_of_their_ended_session_when_sent_again_too(
    storage: Any, tenant: Tenant
) -> None:
    """The rollups go back to that start (the session's days may be final already); a resend
    is told it too, as its first send may have failed after its insert, before they were."""
    session = await stored_session(storage, tenant)
    await storage.sessions.close(tenant.id, session.id, Exit(at=at(5)), frozenset(), NOW, SHUT)
    late = batch(event(session, 1))
    elsewhere = batch(event(a_session(tenant), 1))  # a session never stored: rejected

    first = await storage.events.append(tenant.id, late, NOW, OPEN)
    again = await storage.events.append(tenant.id, late, NOW, OPEN)
    refused = await storage.events.append(tenant.id, elsewhere, NOW, OPEN)

    assert (first.inserted, first.ended_since) == (1, session.started_at)
    assert (again.duplicates, again.ended_since) == (1, session.started_at)
    assert (refused.failed, refused.ended_since) == (1, None)


async def test_a_number_repeated_within_one_batch_is_a_duplicate(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)

    outcome = await storage.events.append(
        tenant.id,
        batch(event(session, 1, meters={"taps": 1}), event(session, 1, meters={"taps": 1})),
        NOW,
        OPEN,
    )

    assert (outcome.inserted, outcome.duplicates) == (1, 1)
    assert (await storage.sessions.get(tenant.id, session.id)).usage == {"taps": 1}


async def test_eight_concurrent_copies_of_a_batch_insert_each_event_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    sessions = [await stored_session(storage, tenant) for _ in range(3)]
    events = batch(
        *(
            event(s, n, meters={"seconds": 2, "cost_usd": Decimal("0.01")})
            for s in sessions
            for n in range(1, 21)
        )
    )

    outcomes = await race(*[lambda s: s.events.append(tenant.id, events, NOW, OPEN)] * 8)

    assert sum(o.inserted for o in outcomes) == 60
    assert sum(o.duplicates for o in outcomes) == 7 * 60
    for s in sessions:
        stored = await storage.sessions.get(tenant.id, s.id)
        assert stored.usage == {"seconds": 40, "cost_usd": Decimal("0.2")}
        assert stored.event_count == 20
        assert stored.event_gaps == []


async def test_overlapping_batches_sent_at_once_near_the_meter_cap_keep_all_they_answer_stored(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Six batches of one session sent at once, each five numbers of 1-10 that overlap the
    next's, each event 150M bytes: the cap (a session's total below 10^9) takes six of the ten.
    API.md: a duplicate is an event already stored; DESIGN.md: a success answer means the write
    is durable. So every event an answer calls inserted or a duplicate is kept, and the usage
    is the sum of those kept (MongoDB judges the cap when it counts, after the insert: an
    append that meets another's events not counted yet waits for that count)."""
    session = await stored_session(storage, tenant)
    batches = [
        batch(*(event(session, n, meters={"bytes": 150_000_000}) for n in range(k, k + 5)))
        for k in range(1, 7)
    ]

    outcomes = await race(
        *[lambda s, b=b: s.events.append(tenant.id, b, NOW, OPEN) for b in batches]
    )

    kept = await assert_books_balance(
        storage, tenant, [session], list(zip(batches, outcomes, strict=True))
    )
    assert len(kept) == 6, (kept, outcomes)


async def test_events_of_unknown_or_ended_sessions_are_rejected_and_the_rest_stored(
    storage: Any, tenant: Tenant
) -> None:
    open_session = await stored_session(storage, tenant)
    ended = await stored_session(storage, tenant)
    await storage.events.append(tenant.id, batch(event(ended, 1)), NOW, OPEN)
    # Ended by its client before event 2 happened: it refuses what comes after its end.
    await storage.sessions.close(tenant.id, ended.id, Exit(at=at(1.5)), frozenset(), NOW, SHUT)
    other = await add_tenant(storage, "globex")
    foreign = await stored_session(storage, other)
    unknown = a_session(tenant)

    outcome = await storage.events.append(
        tenant.id,
        batch(
            event(open_session, 1),
            event(unknown, 1),
            event(ended, 2),
            event(ended, 1),  # already stored before the session ended
            event(foreign, 1),  # another tenant's session does not exist here
            event(open_session, 2),
        ),
        NOW,
        OPEN,
    )

    assert outcome.inserted == 2
    assert outcome.duplicates == 1
    assert sorted(outcome.rejections, key=lambda r: r.index) == [
        EventRejection(1, "session_not_found"),
        EventRejection(2, "session_ended"),
        EventRejection(4, "session_not_found"),
    ]
    assert await storage.events.find(other.id, foreign.id, limit=10) == []


# A device's key scoped to booth-1 (domain.events.admission_of, as IngestEvents builds it).
BOOTH_1_ONLY = admission_of(Access(Role.INGEST, frozenset({"booth-1"})), frozenset())
OUT_OF_SCOPE = "forbidden: this key is scoped to other resources than booth-2"


async def test_events_the_caller_may_not_write_are_refused_even_if_stored_before(
    storage: Any, tenant: Tenant
) -> None:
    """EventLog.append judges each event with `admits`: what it refuses is neither stored nor
    counted, and a copy of an event stored before is refused too, not a duplicate."""
    mine = await stored_session(storage, tenant, resource_id="booth-1")
    theirs = await stored_session(storage, tenant, resource_id="booth-2")
    await storage.events.append(tenant.id, batch(event(theirs, 1, meters={"taps": 1})), NOW, OPEN)

    outcome = await storage.events.append(
        tenant.id,
        batch(
            event(mine, 1, meters={"taps": 1}),
            event(theirs, 1, meters={"taps": 1}),  # stored before
            event(theirs, 2, meters={"taps": 1}),
        ),
        NOW,
        OPEN,
        BOOTH_1_ONLY,
    )

    assert (outcome.inserted, outcome.duplicates) == (1, 0)
    assert outcome.rejections == [EventRejection(1, OUT_OF_SCOPE), EventRejection(2, OUT_OF_SCOPE)]
    stored = await storage.sessions.get(tenant.id, theirs.id)
    assert (stored.usage, stored.event_count) == ({"taps": 1}, 1)
    assert [e.sequence_no for e in await storage.events.find(tenant.id, theirs.id, 10)] == [1]


async def test_a_batch_sorted_again_for_the_meter_limit_still_refuses_what_the_caller_may_not_write(
    storage: Any, tenant: Tenant
) -> None:
    """An event over the meter limit makes the store look up which of the batch were stored
    before and sort it again (domain.events.SortedBatch.to_look_up): that sort judges the
    caller's writes as the first did."""
    mine = await stored_session(storage, tenant, resource_id="booth-1")
    theirs = await stored_session(storage, tenant, resource_id="booth-2")
    await storage.events.append(
        tenant.id, batch(event(mine, 1, meters={"bytes": 900_000_000})), NOW, OPEN
    )

    outcome = await storage.events.append(
        tenant.id,
        batch(
            event(mine, 2, meters={"bytes": 50_000_000}),
            event(mine, 3, meters={"bytes": 100_000_000}),  # with 2: past the limit
            event(theirs, 1),
        ),
        NOW,
        OPEN,
        BOOTH_1_ONLY,
    )

    assert (outcome.inserted, outcome.duplicates) == (1, 0)
    assert [r.index for r in outcome.rejections] == [1, 2]
    assert outcome.rejections[1].error == OUT_OF_SCOPE
    assert await storage.events.find(tenant.id, theirs.id, 10) == []
    assert (await storage.sessions.get(tenant.id, mine.id)).usage == {"bytes": 950_000_000}


COUNSELING = Rate("counseling", 2, Rounding.CEIL, {"analysis": MeterRate(Decimal("1"), 3)})


async def test_meters_racing_charged_exits_are_charged_or_refused_never_left_uncharged(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    # One batch with four events dated minute 3 for each of four sessions (one analysis each),
    # racing an exit of each session at minute 2.5 that charges it. A session's meters either
    # land before its close and are priced with it, or are refused as session_ended: what each
    # session is charged is always the price of the usage it ends up with.
    await storage.rates.put(tenant.id, COUNSELING)
    sessions = [await stored_session(storage, tenant, kind="counseling") for _ in range(4)]
    clock = FakeClock(at(60))

    def exit_and_charge(session: Session) -> Call:
        async def call(storage: Any) -> Any:
            closed, _ = await storage.sessions.close(
                tenant.id, session.id, Exit(at=at(2.5)), frozenset({COUNSELING.kind}), NOW, SHUT
            )
            deduct = wired(storage, clock).use_cases().deduct_credits()
            return await deduct(closed)

        return call

    events = batch(
        *(
            Event(s.id, n, "analysis", at(3), meters={"analysis": 1})
            for s in sessions
            for n in range(1, 5)
        )
    )

    outcome, *_ = await race(
        lambda s: s.events.append(tenant.id, events, NOW, OPEN),
        *(exit_and_charge(s) for s in sessions),
    )

    # A store that corrects charges settles what a correction left pending, as the reaper does.
    deduct = wired(storage, clock).use_cases().deduct_credits()
    for pending in await storage.sessions.pending_charges(tenant.id, 10):
        await deduct(pending)
    entries = await storage.ledger.entries(tenant.id, "user-1", limit=100)
    refused = {r.index: r.error for r in outcome.rejections}
    landed = 0
    for k, session in enumerate(sessions):
        mine = range(4 * k, 4 * k + 4)
        taken = not any(i in refused for i in mine)
        assert taken or [refused.get(i) for i in mine] == ["session_ended"] * 4
        landed += taken
        stored = await storage.sessions.get(tenant.id, session.id)
        assert stored.usage == ({"analysis": 4} if taken else {})
        # 2.5 minutes x 2 = 5 credits, plus 3 per analysis in the usage: 17 or 5.
        price = COUNSELING.price(stored)
        charged = [e for e in entries if e.session_id == session.id]
        assert (-sum(e.amount for e in charged), stored.charge.credits) == (price, price), (
            stored.usage
        )
        # Meters dated after a client's exit never reach it: one charge, never corrected.
        assert [e.kind for e in charged] == [EntryKind.CHARGE]
    assert (outcome.inserted, outcome.duplicates) == (4 * landed, 0)


async def test_a_lost_event_shows_up_as_a_gap(storage: Any, tenant: Tenant) -> None:
    session = await stored_session(storage, tenant)

    await storage.events.append(
        tenant.id, batch(*(event(session, n) for n in (2, 3, 6, 10))), NOW, OPEN
    )

    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.event_gaps == [(1, 1), (4, 5), (7, 9)]
    assert (stored.event_count, stored.max_sequence_no) == (4, 10)
    await storage.events.append(
        tenant.id, batch(*(event(session, n) for n in (1, 4, 5, 7, 8, 9))), NOW, OPEN
    )
    assert (await storage.sessions.get(tenant.id, session.id)).event_gaps == []


async def test_events_are_found_by_type_and_label_a_page_at_a_time(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    labels = ["red", "green", "red", None, "red", "yellow"]
    await storage.events.append(
        tenant.id,
        batch(
            *(
                event(session, n, type="answer" if n % 2 else "tap", label=label)
                for n, label in enumerate(labels, start=1)
            )
        ),
        NOW,
        OPEN,
    )

    def numbers(events: list[Event]) -> list[int]:
        return [e.sequence_no for e in events]

    assert numbers(await storage.events.find(tenant.id, session.id, limit=2)) == [1, 2]
    assert numbers(
        await storage.events.find(tenant.id, session.id, limit=2, after_sequence_no=2)
    ) == [3, 4]
    assert numbers(await storage.events.find(tenant.id, session.id, limit=9, label="red")) == [
        1,
        3,
        5,
    ]
    assert numbers(await storage.events.find(tenant.id, session.id, limit=9, type="answer")) == [
        1,
        3,
        5,
    ]


async def test_distribution_counts_events_by_label(storage: Any, tenant: Tenant) -> None:
    session = await stored_session(storage, tenant)
    labels = ["red", "green", "red", None, "red", "yellow"]
    await storage.events.append(
        tenant.id,
        batch(*(event(session, n, label=label) for n, label in enumerate(labels, start=1))),
        NOW,
        OPEN,
    )

    distribution = await storage.events.distribution(tenant.id, session.id, "label")

    assert distribution.total == 5
    assert distribution.counts == {"red": 3, "green": 1, "yellow": 1}
    assert distribution.percentages == {"red": 60.0, "green": 20.0, "yellow": 20.0}
    assert (await storage.events.distribution(tenant.id, session.id, "type")).counts == {"tap": 6}
