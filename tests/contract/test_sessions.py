"""SessionRepository contract: storing, reading, listing, heartbeats, closing once, timing out."""

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from application.sessions.ports import SessionFilter, SessionPosition
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import Event
from domain.session import ChargeState, Closing, Exit, Session, SessionStatus
from domain.staleness import Staleness
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, SHUT, a_session, add_tenant, at, stored_session
from tests.contract.races import Call, Race

pytestmark = pytest.mark.anyio


async def test_a_stored_session_reads_back_field_for_field(storage: Any, tenant: Tenant) -> None:
    session = a_session(
        tenant,
        subject_id=None,
        client_key="browser-7f3a",
        attributes={"user_agent": "Firefox", "tab": 2, "ratio": 0.5, "beta": True},
    )
    assert await storage.sessions.add(session)

    stored = await storage.sessions.get(tenant.id, session.id)

    assert stored == session
    assert stored.started_at.tzinfo is not None and stored.started_at == at(0)


async def test_an_id_is_stored_once_and_the_first_session_wins(
    storage: Any, tenant: Tenant
) -> None:
    first = await stored_session(storage, tenant)
    second = replace(a_session(tenant, kind="quiz"), id=first.id)

    assert await storage.sessions.add(second) is False
    assert (await storage.sessions.get(tenant.id, first.id)).kind == "webinar"


async def test_concurrent_adds_of_one_id_store_it_exactly_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    session = a_session(tenant)

    added = await race(*[lambda s: s.sessions.add(session.copy())] * 8)

    assert sorted(added) == [False] * 7 + [True]


async def test_sessions_of_other_tenants_are_invisible(storage: Any, tenant: Tenant) -> None:
    other = await add_tenant(storage, "globex")
    mine = await stored_session(storage, tenant)
    theirs = replace(a_session(other, kind="kiosk"), id=mine.id)

    assert await storage.sessions.add(theirs)  # the same id in another tenant is another session
    assert (await storage.sessions.get(tenant.id, mine.id)).kind == "webinar"
    assert (await storage.sessions.get(other.id, mine.id)).kind == "kiosk"
    assert await storage.sessions.get(tenant.id, "9b2f0a4e-0000-4000-8000-000000000000") is None


async def test_heartbeats_move_last_seen_forward_never_back(storage: Any, tenant: Tenant) -> None:
    session = await stored_session(storage, tenant)

    assert (await storage.sessions.heartbeat(tenant.id, session.id, at(5))).last_seen_at == at(5)
    assert (await storage.sessions.heartbeat(tenant.id, session.id, at(3))).last_seen_at == at(5)
    assert (await storage.sessions.get(tenant.id, session.id)).last_seen_at == at(5)


async def test_concurrent_heartbeats_leave_the_latest_sign_of_life(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    # Each store decides a heartbeat on the session as read (Session.heartbeat) and saves it in
    # its atomic step: none may overwrite a later heartbeat with its own earlier one.
    session = await stored_session(storage, tenant)
    minutes = range(1, 9)

    def beat(minute: int) -> Call:
        return lambda s: s.sessions.heartbeat(tenant.id, session.id, at(minute))

    answers = await race(*(beat(m) for m in minutes))

    assert all(a.last_seen_at >= at(m) for a, m in zip(answers, minutes, strict=True))
    assert (await storage.sessions.get(tenant.id, session.id)).last_seen_at == at(8)


async def test_heartbeats_of_unknown_or_ended_sessions_are_refused(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant)
    await storage.sessions.close(tenant.id, session.id, Exit(at=at(1)), frozenset(), NOW, SHUT)

    with pytest.raises(Conflict):
        await storage.sessions.heartbeat(tenant.id, session.id, at(2))
    with pytest.raises(NotFound):
        await storage.sessions.heartbeat(tenant.id, a_session(tenant).id, at(2))


async def test_closing_records_the_exit(storage: Any, tenant: Tenant) -> None:
    session = await stored_session(storage, tenant)
    exit = Exit(
        at=at(30),
        status=SessionStatus.ABANDONED,
        reason="tab closed",
        summary={"funnel": ["intro", "pricing"], "paid": False},
        usage={"seconds": 1800, "cost_usd": Decimal("0.125")},
    )

    closed, did_close = await storage.sessions.close(
        tenant.id, session.id, exit, frozenset(), NOW, SHUT
    )

    assert did_close is Closing.CLOSED
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored == closed
    assert stored.status is SessionStatus.ABANDONED
    assert stored.ended_at == at(30) and stored.last_seen_at == at(30)
    assert stored.duration_seconds == 1800.0
    assert stored.exit_reason == "tab closed"
    assert stored.summary == {"funnel": ["intro", "pricing"], "paid": False}
    assert stored.usage == {"seconds": 1800, "cost_usd": Decimal("0.125")}
    assert isinstance(stored.usage["seconds"], int)
    assert stored.charge_state is ChargeState.NOT_CHARGED


async def test_a_second_exit_is_a_replay_that_changes_nothing(storage: Any, tenant: Tenant) -> None:
    session = await stored_session(storage, tenant)
    first, _ = await storage.sessions.close(
        tenant.id, session.id, Exit(at=at(10), usage={"seconds": 600}), frozenset(), NOW, SHUT
    )

    again, did_close = await storage.sessions.close(
        tenant.id,
        session.id,
        Exit(at=at(20), status=SessionStatus.FAILED, usage={"seconds": 5}),
        frozenset(),
        NOW,
        SHUT,
    )

    assert did_close is Closing.REPLAY
    assert again == first
    assert again.usage == {"seconds": 600}


async def test_the_session_an_exit_or_the_reaper_returns_has_its_event_gaps(
    storage: Any, tenant: Tenant
) -> None:
    closed_one, replayed_one, timed_out_one = [await stored_session(storage, tenant) for _ in "abc"]
    for s in (closed_one, replayed_one, timed_out_one):
        numbered = [(i, Event(s.id, n, "tap", at(1))) for i, n in enumerate((1, 3))]
        await storage.events.append(tenant.id, numbered, NOW, OPEN)
    await storage.sessions.close(tenant.id, replayed_one.id, Exit(at(2)), frozenset(), NOW, SHUT)

    closed, _ = await storage.sessions.close(
        tenant.id, closed_one.id, Exit(at(2)), frozenset(), NOW, SHUT
    )
    replayed, closing = await storage.sessions.close(
        tenant.id, replayed_one.id, Exit(at(3)), frozenset(), NOW, SHUT
    )
    (timed_out,) = await storage.sessions.time_out_idle(
        tenant.id, Staleness(at(60)), 10, frozenset(), NOW, OPEN
    )

    assert closing is Closing.REPLAY
    assert [s.event_gaps for s in (closed, replayed, timed_out)] == [[(2, 2)]] * 3
    assert timed_out.id == timed_out_one.id


async def test_an_exit_before_the_start_is_refused_and_the_session_stays_open(
    storage: Any, tenant: Tenant
) -> None:
    session = await stored_session(storage, tenant, minutes=10)

    with pytest.raises(InvalidInput):
        await storage.sessions.close(tenant.id, session.id, Exit(at=at(5)), frozenset(), NOW, SHUT)

    assert (await storage.sessions.get(tenant.id, session.id)).status is SessionStatus.ACTIVE


async def test_closing_an_unknown_session_is_not_found(storage: Any, tenant: Tenant) -> None:
    with pytest.raises(NotFound):
        await storage.sessions.close(
            tenant.id, a_session(tenant).id, Exit(at=at(1)), frozenset(), NOW, SHUT
        )


async def test_sixteen_concurrent_exits_close_the_session_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    session = await stored_session(storage, tenant)

    def exit_at(minute: int) -> Call:
        exit = Exit(at=at(minute), usage={"seconds": 1})
        return lambda s: s.sessions.close(tenant.id, session.id, exit, frozenset(), NOW, SHUT)

    results = await race(*(exit_at(i + 1) for i in range(16)))

    closings = [closing for _, closing in results]
    assert sorted(closings) == [Closing.CLOSED] + [Closing.REPLAY] * 15
    winner = next(s for s, closing in results if closing is Closing.CLOSED)
    assert all(s.ended_at == winner.ended_at for s, _ in results)
    stored = await storage.sessions.get(tenant.id, session.id)
    assert stored.usage == {"seconds": 1}
    assert stored.ended_at == winner.ended_at


async def test_listing_is_newest_first_and_filters(storage: Any, tenant: Tenant) -> None:
    other = await add_tenant(storage, "globex")
    await stored_session(storage, other, minutes=99)
    a = await stored_session(storage, tenant, minutes=1, kind="practice", resource_id="set-1")
    b = await stored_session(storage, tenant, minutes=2, subject_id="user-2")
    c = await stored_session(storage, tenant, minutes=3)
    await storage.sessions.close(tenant.id, c.id, Exit(at=at(4)), frozenset(), NOW, SHUT)

    async def ids(**where: Any) -> list[str]:
        found = await storage.sessions.find(tenant.id, SessionFilter(**where), limit=10)
        return [s.id for s in found]

    assert await ids() == [c.id, b.id, a.id]
    assert await ids(kind="practice") == [a.id]
    assert await ids(resource_id="webinar-1") == [c.id, b.id]
    assert await ids(subject_id="user-2") == [b.id]
    assert await ids(status=SessionStatus.COMPLETED) == [c.id]
    assert await ids(status=SessionStatus.ACTIVE) == [b.id, a.id]
    assert await ids(started_from=at(2)) == [c.id, b.id]
    assert await ids(started_to=at(2)) == [a.id]


async def test_listing_filters_by_an_anonymous_browsers_client_key(
    storage: Any, tenant: Tenant
) -> None:
    first = await stored_session(storage, tenant, minutes=1, subject_id=None, client_key="tab-1")
    await stored_session(storage, tenant, minutes=2, subject_id=None, client_key="tab-2")
    signed_in = await stored_session(storage, tenant, minutes=3, client_key="tab-1")
    other = await add_tenant(storage, "globex")
    await stored_session(storage, other, minutes=4, subject_id=None, client_key="tab-1")

    async def ids(**where: Any) -> list[str]:
        found = await storage.sessions.find(tenant.id, SessionFilter(**where), limit=10)
        return [s.id for s in found]

    assert await ids(client_key="tab-1") == [signed_in.id, first.id]
    assert await ids(client_key="tab-1", subject_id="user-1") == [signed_in.id]
    assert await ids(client_key="nobody") == []


async def test_listing_pages_continue_after_a_position_without_repeats(
    storage: Any, tenant: Tenant
) -> None:
    # Two sessions share a start instant, so the id breaks the tie.
    sessions = [await stored_session(storage, tenant, minutes=i // 2) for i in range(7)]
    expected = [s.id for s in sorted(sessions, key=lambda s: (s.started_at, s.id), reverse=True)]

    seen: list[str] = []
    after = None
    while True:
        page = await storage.sessions.find(tenant.id, SessionFilter(), limit=3, after=after)
        seen += [s.id for s in page]
        if len(page) < 3:
            break
        after = SessionPosition(page[-1].started_at, page[-1].id)

    assert seen == expected


async def test_the_reaper_closes_stale_sessions_where_they_were_last_seen(
    storage: Any, tenant: Tenant
) -> None:
    stale = await stored_session(storage, tenant)
    await storage.sessions.heartbeat(tenant.id, stale.id, at(7))
    fresh = await stored_session(storage, tenant, minutes=8)
    ended = await stored_session(storage, tenant)
    await storage.sessions.close(tenant.id, ended.id, Exit(at=at(1)), frozenset(), NOW, SHUT)
    other = await add_tenant(storage, "globex")
    elsewhere = await stored_session(storage, other)

    closed = await storage.sessions.time_out_idle(
        tenant.id, Staleness(at(7.5)), 100, frozenset(), NOW, OPEN
    )

    assert [s.id for s in closed] == [stale.id]
    stored = await storage.sessions.get(tenant.id, stale.id)
    assert stored == closed[0]
    assert stored.status is SessionStatus.TIMED_OUT
    assert stored.ended_at == at(7)
    assert stored.duration_seconds == 7 * 60
    assert stored.charge_state is ChargeState.NOT_CHARGED
    assert (await storage.sessions.get(tenant.id, fresh.id)).is_active
    assert (await storage.sessions.get(other.id, elsewhere.id)).is_active
    assert (
        await storage.sessions.time_out_idle(
            tenant.id, Staleness(at(7.5)), 100, frozenset(), NOW, OPEN
        )
        == []
    )


async def test_concurrent_reapers_close_each_stale_session_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    sessions = [await stored_session(storage, tenant) for _ in range(12)]

    batches = await race(
        *[
            lambda s: s.sessions.time_out_idle(
                tenant.id, Staleness(at(60)), 5, frozenset(), NOW, OPEN
            )
        ]
        * 6
    )

    closed_ids = [s.id for batch in batches for s in batch]
    assert all(len(batch) <= 5 for batch in batches)
    assert len(closed_ids) == len(set(closed_ids))
    assert set(closed_ids) <= {s.id for s in sessions}
    remaining = await storage.sessions.time_out_idle(
        tenant.id, Staleness(at(60)), 100, frozenset(), NOW, OPEN
    )
    assert len(closed_ids) + len(remaining) == 12


async def test_a_heartbeat_that_succeeded_is_never_undone_by_a_reaper_racing_it(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    # Forty sessions silent since minute 0; a reaper (cutoff: minute 60) sweeps them while four
    # clients send each one heartbeat dated minute 90, from the other end of the id order so
    # that they meet the reaper halfway: most heartbeats arrive after the reaper has read the
    # sessions as stale and before it closes them.
    ids = sorted([(await stored_session(storage, tenant)).id for _ in range(40)], reverse=True)

    async def heartbeats(storage: Any, ids: list[str]) -> list[str]:
        succeeded = []
        for session_id in ids:
            try:
                await storage.sessions.heartbeat(tenant.id, session_id, at(90))
            except Conflict:  # the reaper closed it first: this heartbeat failed, visibly
                continue
            succeeded.append(session_id)
        return succeeded

    def client(n: int) -> Call:
        return lambda s: heartbeats(s, ids[n::4])

    reaped, *beats = await race(
        lambda s: s.sessions.time_out_idle(
            tenant.id, Staleness(at(60)), 100, frozenset(), NOW, OPEN
        ),
        *(client(n) for n in range(4)),
    )

    heard = {session_id for succeeded in beats for session_id in succeeded}
    # Each heartbeat either succeeded or found the session closed by this reaper.
    assert heard | {s.id for s in reaped} == set(ids)
    # A session heard from at minute 90 was not silent since minute 0: it is still active, or
    # ended no earlier than that heartbeat.
    undone = [s for s in await stored(storage, tenant, sorted(heard)) if not seen_at_90(s)]
    assert undone == [], f"{len(undone)} of {len(heard)} successful heartbeats were undone"
    assert not any(s.is_active for s in await stored(storage, tenant, [s.id for s in reaped]))


async def stored(storage: Any, tenant: Tenant, ids: list[str]) -> list[Session]:
    return [await storage.sessions.get(tenant.id, session_id) for session_id in ids]


def seen_at_90(session: Session) -> bool:
    """Whether the session kept a sign of life dated minute 90, and is consistent: active with
    no end, or ended no earlier than that."""
    if session.is_active:
        return session.ended_at is None and session.last_seen_at >= at(90)
    return session.ended_at is not None and session.last_seen_at >= session.ended_at >= at(90)


async def test_signs_of_life_racing_the_reaper_are_never_lost(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    # As with heartbeats, but signs of life (webhooks, reconciliation) are taken even after the
    # reaper's provisional end, while the late-data window lasts (it is open here): whichever
    # comes first, every session ends up seen at minute 90, active or ended no earlier.
    ids = sorted([(await stored_session(storage, tenant)).id for _ in range(40)], reverse=True)

    async def signs(storage: Any, ids: list[str]) -> list[Any]:
        return [
            await storage.sessions.sign_of_life(tenant.id, session_id, at(90), NOW, OPEN)
            for session_id in ids
        ]

    def client(n: int) -> Call:
        return lambda s: signs(s, ids[n::4])

    reaped, *answers = await race(
        lambda s: s.sessions.time_out_idle(
            tenant.id, Staleness(at(60)), 100, frozenset(), NOW, OPEN
        ),
        *(client(n) for n in range(4)),
    )

    assert all(seen_at_90(a) for answered in answers for a in answered)
    lost = [s for s in await stored(storage, tenant, ids) if not seen_at_90(s)]
    assert lost == [], f"{len(lost)} of 40 signs of life were lost"
    # The reaper's end is moved, never undone.
    assert not any(s.is_active for s in await stored(storage, tenant, [s.id for s in reaped]))
