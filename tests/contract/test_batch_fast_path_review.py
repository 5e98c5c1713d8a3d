"""Hostile review of the event batch's fast paths (asyncpg / sqlite3 statements, the shared
append_batch steps and _count_stored): each event stored once and counted once, in the same
transaction, whatever races it; duplicates add nothing, not even to the limit checks."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from application.events.ingest_events import IngestEventsCommand
from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from application.sessions.record_exit import RecordExitCommand
from domain.credits import MeterRate, Rate, Rounding
from domain.errors import InvalidInput
from domain.events import Event
from domain.session import ChargeState, Exit, SessionStatus
from domain.staleness import Staleness
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, at, stored_session, wired
from tests.contract.races import Race
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

COUNSELING = Rate("counseling", 2, Rounding.CEIL, {"analysis": MeterRate(Decimal("1"), 3)})
CLOCK = FakeClock(at(60))


def metered(session: Any, n: int, meters: dict[str, Any], minutes: float | None = None) -> Event:
    return Event(session.id, n, "tap", at(n if minutes is None else minutes), meters=meters)


# Duplicates add nothing, not even to the meter limit (API.md "Events and usage": "A (session_id,
# sequence_no) already stored is a duplicate, not an error, and adds nothing").


async def test_a_resent_batch_judges_the_meter_limit_without_the_events_stored_before(
    storage: Any, tenant: Tenant
) -> None:
    # Event 1 (400M bytes) is stored; the client's buffer is replayed with event 2 (400M more):
    # the session's total would be 800M, below the 10^9 limit, so event 2 must be stored.
    session = await stored_session(storage, tenant)
    first = metered(session, 1, {"bytes": 400_000_000})
    await storage.events.append(tenant.id, [(0, first)], NOW, OPEN)

    outcome = await storage.events.append(
        tenant.id, [(0, first), (1, metered(session, 2, {"bytes": 400_000_000}))], NOW, OPEN
    )

    assert (outcome.inserted, outcome.duplicates, outcome.rejections) == (1, 1, [])
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.usage, stored.event_count) == ({"bytes": 800_000_000}, 2)


async def test_a_batch_resent_while_its_first_copy_is_stored_refuses_nothing_within_the_limit(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    # The same, as a race: the short batch and the long one at once. Whichever goes first,
    # both events are stored and nothing is refused (the total, 800M, is within the limit).
    session = await stored_session(storage, tenant)
    first = metered(session, 1, {"bytes": 400_000_000})
    second = metered(session, 2, {"bytes": 400_000_000})

    outcomes = await race(
        lambda s: s.events.append(tenant.id, [(0, first)], NOW, OPEN),
        lambda s: s.events.append(tenant.id, [(0, first), (1, second)], NOW, OPEN),
    )

    assert [o.rejections for o in outcomes] == [[], []]
    assert sum(o.inserted for o in outcomes) == 2
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.usage, stored.event_count) == ({"bytes": 800_000_000}, 2)


# Overlapping batches at once: _count_stored counts only what its own call stored.


async def test_overlapping_batches_at_once_store_and_count_each_event_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    sessions = [await stored_session(storage, tenant) for _ in range(3)]
    meters = {"seconds": 2, "cost_usd": Decimal("0.001")}

    def window(first: int) -> list[tuple[int, Event]]:
        # Events first..first+9 of every session, the sessions in a different order each time.
        ordered = sessions[first % 3 :] + sessions[: first % 3]
        events = [metered(s, n, meters) for s in ordered for n in range(first, first + 10)]
        return list(enumerate(events))

    batches = [window(k) for k in (1, 4, 7, 10, 13, 16)]
    outcomes = await race(
        *(lambda s, b=b: s.events.append(tenant.id, b, NOW, OPEN) for b in batches)
    )

    distinct = 3 * 25  # numbers 1..25 of each session
    assert sum(o.inserted for o in outcomes) == distinct
    assert sum(o.duplicates for o in outcomes) == 6 * 30 - distinct
    assert all(o.rejections == [] for o in outcomes)
    for s in sessions:
        stored = await storage.sessions.get(tenant.id, s.id)
        assert stored.usage == {"seconds": 50, "cost_usd": Decimal("0.025")}
        assert (stored.event_count, stored.max_sequence_no, stored.event_gaps) == (25, 25, [])


async def test_batches_naming_many_sessions_in_opposite_orders_never_deadlock(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    sessions = [await stored_session(storage, tenant) for _ in range(30)]

    def over(ordered: list[Any], number: int) -> list[tuple[int, Event]]:
        return list(enumerate(metered(s, number, {"taps": 1}) for s in ordered))

    backwards = list(reversed(sessions))
    outcomes = await race(
        lambda s: s.events.append(tenant.id, over(sessions, 1), NOW, OPEN),
        lambda s: s.events.append(tenant.id, over(backwards, 2), NOW, OPEN),
        lambda s: s.events.append(tenant.id, over(sessions[::2] + sessions[1::2], 3), NOW, OPEN),
        lambda s: s.events.append(tenant.id, over(backwards, 1), NOW, OPEN),
    )

    assert sum(o.inserted for o in outcomes) == 90
    assert sum(o.duplicates for o in outcomes) == 30
    for s in sessions:
        stored = await storage.sessions.get(tenant.id, s.id)
        assert (stored.usage, stored.event_count) == ({"taps": 3}, 3)


# Limits decided on fresh usage, under concurrency.


async def test_metered_batches_at_once_never_push_a_total_to_the_limit(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    session = await stored_session(storage, tenant)
    quarter = 300_000_000  # three fit below 10^9, a fourth does not

    outcomes = await race(
        *(
            lambda s, n=n: s.events.append(
                tenant.id, [(0, metered(session, n, {"bytes": quarter}))], NOW, OPEN
            )
            for n in range(1, 6)
        )
    )

    assert sum(o.inserted for o in outcomes) == 3
    refused = [r.error for o in outcomes for r in o.rejections]
    assert len(refused) == 2 and all(
        e.startswith("validation_error: meters.bytes") for e in refused
    )
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.usage, stored.event_count) == ({"bytes": 3 * quarter}, 3)


# The partial-duplicate path of an ended, charged session: a correction is still settled.


async def test_a_resent_batch_of_late_meters_leaves_a_charged_session_to_be_settled_again(
    storage: Any, tenant: Tenant
) -> None:
    await storage.rates.put(tenant.id, COUNSELING)
    session = await stored_session(storage, tenant, kind="counseling", subject_id="ana")
    ingest = wired(storage, CLOCK).use_cases().ingest_events()
    record_exit = wired(storage, CLOCK).use_cases().record_exit()
    await record_exit(RecordExitCommand(tenant.id, session.id, at=at(5)))
    late = [Event(session.id, n, "analysis", at(n), meters={"analysis": 1}) for n in (1, 2)]
    await ingest(IngestEventsCommand(tenant, late[:1]))
    # The retry carries event 1 again (stored) and event 2 (new): the partial-duplicate path.
    outcome = await ingest(IngestEventsCommand(tenant, late))

    assert (outcome.inserted, outcome.duplicates, outcome.failed) == (1, 1, 0)
    stored = await storage.sessions.get(tenant.id, session.id)
    price = 2 * 5 + 3 * 2
    entries = await storage.ledger.entries(tenant.id, "ana", limit=100)
    assert stored.usage == {"analysis": 2}
    assert (stored.charge_state, stored.charge.credits if stored.charge else None) == (
        ChargeState.CHARGED,
        price,
    )
    assert -sum(e.amount for e in entries if e.session_id == session.id) == price


# A batch racing the reaper: the end it chose moves to the batch's latest event, counted once.


async def test_a_batch_racing_the_reaper_counts_once_and_moves_the_provisional_end(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    await storage.rates.put(tenant.id, COUNSELING)
    sessions = [
        await stored_session(storage, tenant, kind="counseling", subject_id="ana") for _ in range(4)
    ]
    for s in sessions:
        await storage.sessions.heartbeat(tenant.id, s.id, at(3))
    events = [
        Event(s.id, n, "analysis", at(3 + n), meters={"analysis": 1})
        for s in sessions
        for n in (1, 2)
    ]

    async def reap(s: Any) -> Any:
        return await wired(s, CLOCK).jobs().reap_stale_sessions()(ReapStaleSessionsCommand())

    async def ingest(s: Any) -> Any:
        return (
            await wired(s, CLOCK).use_cases().ingest_events()(IngestEventsCommand(tenant, events))
        )

    _, outcome = await race(reap, ingest)
    await reap(storage)  # settles what was left pending

    assert (outcome.inserted, outcome.failed) == (8, 0)
    entries = await storage.ledger.entries(tenant.id, "ana", limit=100)
    price = 2 * 5 + 3 * 2
    for s in sessions:
        stored = await storage.sessions.get(tenant.id, s.id)
        assert (stored.status, stored.ended_at, stored.usage, stored.event_count) == (
            SessionStatus.TIMED_OUT,
            at(5),
            {"analysis": 2},
            2,
        )
        assert stored.charge_state is ChargeState.CHARGED
        assert -sum(e.amount for e in entries if e.session_id == s.id) == price


# A batch racing the client's exit, the exit dated between its events: each event either lands
# (dated up to the end) or is refused session_ended (dated after), its meters counted once.


async def test_a_batch_straddling_a_racing_exit_counts_what_precedes_the_end_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    sessions = [await stored_session(storage, tenant) for _ in range(5)]
    events = [metered(s, n, {"taps": 1}) for s in sessions for n in (1, 2, 3, 4)]

    def exit_of(session: Any) -> Any:
        return lambda s: s.sessions.close(
            tenant.id, session.id, Exit(at=at(2.5)), frozenset(), NOW, OPEN
        )

    outcome, *_ = await race(
        lambda s: s.events.append(tenant.id, list(enumerate(events)), NOW, OPEN),
        *(exit_of(x) for x in sessions),
    )

    refused = {r.index: r.error for r in outcome.rejections}
    for k, s in enumerate(sessions):
        stored = await storage.sessions.get(tenant.id, s.id)
        mine = [refused.get(4 * k + i) for i in range(4)]
        # Before the exit: all four land; after: 1 and 2 land (dated before the end) and 3, 4
        # are refused.
        assert mine in ([None] * 4, [None, None, "session_ended", "session_ended"]), mine
        landed = mine.count(None)
        assert (stored.usage, stored.event_count) == ({"taps": landed}, landed)
        assert stored.ended_at == at(2.5)


async def test_a_batch_retried_a_day_later_into_a_reaped_session_is_all_duplicates(
    storage: Any, tenant: Tenant
) -> None:
    # Duplicates of a session whose end moved add nothing and move nothing.
    session = await stored_session(storage, tenant)
    events = [(i, metered(session, n, {"taps": 1})) for i, n in enumerate((1, 2, 3))]
    await storage.events.append(tenant.id, events, NOW, OPEN)
    closed = await storage.sessions.time_out_idle(
        tenant.id, Staleness(default=NOW), 10, frozenset(), NOW, OPEN
    )
    assert [c.id for c in closed] == [session.id]

    outcome = await storage.events.append(tenant.id, events, NOW + timedelta(days=1), OPEN)

    assert (outcome.inserted, outcome.duplicates, outcome.rejections) == (0, 3, [])
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.usage, stored.event_count, stored.ended_at) == ({"taps": 3}, 3, at(3))


async def test_an_exit_and_a_batch_at_once_never_push_a_meter_to_the_limit(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    # Each adds 600M to the same meter: together they would reach 10^9, so exactly one of them
    # is refused (the batch's event as validation_error, or the exit as InvalidInput), never both
    # taken on usage read before the other's was added.
    sessions = [await stored_session(storage, tenant) for _ in range(4)]
    big = 600_000_000

    def exit_of(session: Any) -> Any:
        return lambda s: s.sessions.close(
            tenant.id, session.id, Exit(at=at(0.5), usage={"bytes": big}), frozenset(), NOW, OPEN
        )

    def batch_of(session: Any) -> Any:
        events = [(0, metered(session, 1, {"bytes": big}, minutes=0.25))]
        return lambda s: s.events.append(tenant.id, events, NOW, OPEN)

    outcomes = await race(
        *(f for x in sessions for f in (batch_of(x), exit_of(x))), return_exceptions=True
    )

    for k, session in enumerate(sessions):
        appended, exited = outcomes[2 * k], outcomes[2 * k + 1]
        stored = await storage.sessions.get(tenant.id, session.id)
        assert stored.usage["bytes"] < 10**9, (appended, exited)
        assert stored.usage == {"bytes": big}, (appended, exited)
        exit_refused = isinstance(exited, InvalidInput)
        assert exit_refused or not isinstance(exited, BaseException), exited
        assert exit_refused == (appended.inserted == 1), (appended, exited)
        assert stored.status is (SessionStatus.ACTIVE if exit_refused else SessionStatus.COMPLETED)


async def test_heartbeats_racing_a_batch_leave_the_latest_sign_of_life(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    sessions = [await stored_session(storage, tenant) for _ in range(4)]
    events = list(enumerate(metered(s, 1, {"taps": 1}, minutes=10) for s in sessions))

    def beat(session: Any, minutes: float) -> Any:
        return lambda s: s.sessions.heartbeat(tenant.id, session.id, at(minutes))

    await race(
        lambda s: s.events.append(tenant.id, events, NOW, OPEN),
        *(beat(x, m) for x in sessions for m in (5, 20 if x is sessions[0] else 7)),
    )

    for session in sessions:
        stored = await storage.sessions.get(tenant.id, session.id)
        latest = at(20) if session is sessions[0] else at(10)
        assert (stored.last_seen_at, stored.usage, stored.event_count) == (latest, {"taps": 1}, 1)


async def test_overlapping_batches_into_a_reaped_session_move_its_end_to_the_latest_event_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    session = await stored_session(storage, tenant)
    await storage.sessions.heartbeat(tenant.id, session.id, at(3))
    closed = await storage.sessions.time_out_idle(
        tenant.id, Staleness(default=at(10)), 10, frozenset(), at(60), OPEN
    )
    assert [c.ended_at for c in closed] == [at(3)]

    def numbered(*numbers: int) -> list[tuple[int, Event]]:
        return list(enumerate(metered(session, n, {"taps": 1}, minutes=3 + n) for n in numbers))

    outcomes = await race(
        lambda s: s.events.append(tenant.id, numbered(1, 2), at(60), OPEN),
        lambda s: s.events.append(tenant.id, numbered(2, 3, 1), at(60), OPEN),
        lambda s: s.events.append(tenant.id, numbered(3, 4), at(60), OPEN),
    )

    assert sum(o.inserted for o in outcomes) == 4
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.status, stored.ended_at, stored.usage, stored.event_count) == (
        SessionStatus.TIMED_OUT,
        at(7),
        {"taps": 4},
        4,
    )


async def test_the_largest_sequence_number_is_stored_and_its_gap_read_back(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    largest = 2**63 - 1

    outcome = await storage.events.append(
        tenant.id, [(0, metered(session, largest, {}, 2)), (1, metered(session, 1, {}))], NOW, OPEN
    )

    assert (outcome.inserted, outcome.rejections) == (2, [])
    stored = await storage.sessions.get(tenant.id, session.id)
    assert (stored.max_sequence_no, stored.event_gaps) == (largest, [(2, largest - 1)])
