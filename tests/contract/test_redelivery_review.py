"""A hostile review of d42df5d (a redelivered join looks at its room's end only while its stay is
open; MongoDB judges the meter limit without counted events only) and 4605364 (a track's seconds
leave an ended stay to be settled again in the track's own step). Each test states the guarantee
of API.md / DESIGN.md it holds the stores to."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from pymongo import InsertOne, UpdateMany

from adapters.mongodb import event_counting
from adapters.mongodb import events as mongo_events
from application.sessions.record_exit import RecordExitCommand
from domain.events import EventRejection
from domain.session import RECONCILED, ROOM_FINISHED, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import NOW, OPEN, at, stored_session, wired
from tests.contract.dying_appends import counts_later, marked, next_append_dies
from tests.contract.races import Race
from tests.contract.test_lifecycle_fast_path_review import DiesAtFinishedAt
from tests.contract.test_livekit_stays import gone, livekit_server_of, reconcile, settled_stay
from tests.contract.test_mongodb_specifics import dying_append  # noqa: F401 (a fixture)
from tests.contract.test_todays_fixes_review import (
    a_server,
    books_of,
    charged_stay_with_cameras,
    deliver,
    entries,
    metered,
    reap,
    snapshot,
    stamped,
    stay_of,
    unpublish,
)
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

# Ana's stay 0..20, ended with its room at 20, her camera published at 1 (19 minutes): 20 credits
# of stay, 2 a started minute of camera.
ROOM_END = 20
CAMERA_SECONDS = (ROOM_END - 1) * 60
WITH_THE_ROOM = ROOM_END + 2 * (ROOM_END - 1)


def camera_published(server: Any, minute: float = 1) -> Any:
    return server.track("track_published", "ana", stamped(0), "TR_1", "CAMERA", stamped(minute))


def dies_at_the_rooms_look(storage: Any) -> dict[str, Any]:
    return {"finished_rooms": DiesAtFinishedAt(storage.finished_rooms)}


async def ended_with_the_room(storage: Any, tenant: Tenant, server: Any) -> Any:
    """The stay is ended by its room at 20 (a guess, reason room_finished), its camera with it,
    charged once at that price (DESIGN.md: charged exactly once, the ledger its sum)."""
    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    assert (stay.status, stay.ended_at, stay.exit_reason) == (
        SessionStatus.COMPLETED,
        stamped(ROOM_END),
        ROOM_FINISHED,
    ), stay
    assert stay.usage == {"video.seconds": CAMERA_SECONDS}
    assert credits == WITH_THE_ROOM
    return written


# --- d42df5d (a): the webhooks that open a stay in a finished room, handled again -------------


@pytest.mark.parametrize("crash", [True, False], ids=["crashed", "control"])
async def test_a_track_webhook_that_stored_its_stay_handled_again_after_a_crash_ends_it_with_room(
    storage: Any, tenant: Tenant, crash: bool
) -> None:
    """room_finished (20) came first; the stay's first webhook to arrive is her camera's
    track_published (1) (ReceiveLiveKitWebhook: "a join is recorded by the first webhook of the
    stay to arrive, whichever it is"; a stay opened in a room that finished ends with it). Its
    handling dies after storing the stay, before it looked at the room (as f879498's join did).
    LiveKit redelivers it (the id is recorded last): the redelivery finds its stay stored and
    does not look at the room (a read more on every track webhook otherwise), so the reaper's
    sweep of open stays in finished rooms (EndStaysInFinishedRooms) ends it with its room. A
    livekit stay without a URL never times out: left open, it would be open until the day's cap
    closed it at a guess."""
    server = await a_server(storage, tenant)
    await deliver(storage, server.webhook("room_finished", stamped(ROOM_END)))
    published = camera_published(server)
    if crash:
        with pytest.raises(ConnectionError):
            await deliver(storage, published, **dies_at_the_rooms_look(storage))

    await deliver(storage, published)  # (re)delivered
    await reap(storage)

    await ended_with_the_room(storage, tenant, server)


@pytest.mark.parametrize("attempt", range(3))
async def test_the_reapers_sweep_and_the_stays_left_at_once_end_it_once_where_she_left(
    storage: Any, tenant: Tenant, race: Race, attempt: int
) -> None:
    """The stay of the crash above, left open in its finished room, is swept by the reaper
    while her `left` (5) arrives. The room's end is a guess that her `left` replaces, so
    whichever comes first, the stay ends where she left, her camera with it (4 minutes),
    charged once at that price: 5 + 2 * 4 credits, the ledger its sum."""
    server = await a_server(storage, tenant)
    await deliver(storage, server.webhook("room_finished", stamped(ROOM_END)))
    published = camera_published(server)
    with pytest.raises(ConnectionError):
        await deliver(storage, published, **dies_at_the_rooms_look(storage))
    await deliver(storage, published)  # redelivered: the camera is recorded, the stay open
    left = server.left("ana", stamped(0), stamped(5))

    await race(lambda s: reap(s), lambda s: deliver(s, left))

    stay, credits, _ = await books_of(storage, tenant, stay_of(server))
    assert (stay.status, stay.ended_at) == (SessionStatus.COMPLETED, stamped(5))
    assert stay.usage == {"video.seconds": 4 * 60}
    assert credits == 5 + 2 * 4


async def test_a_join_handled_again_after_a_crash_and_a_camera_ends_both_with_the_room(
    storage: Any, tenant: Tenant
) -> None:
    """room_finished (20) came first; the late join dies after storing the stay, before its
    look at the room; her camera's track_published (1) is then handled (a sign of life of the
    open stay: no look at the room). The join redelivered finds the stay still open and ends it
    with the room: the camera ends with it at 20, the stay is charged once (held)."""
    server = await a_server(storage, tenant)
    await deliver(storage, server.webhook("room_finished", stamped(ROOM_END)))
    join = server.joined("ana", stamped(0))
    with pytest.raises(ConnectionError):
        await deliver(storage, join, **dies_at_the_rooms_look(storage))
    await deliver(storage, camera_published(server))

    again = await deliver(storage, join)

    assert not again.started  # stored by its first handling
    written = await ended_with_the_room(storage, tenant, server)
    assert len(written) == 1


@pytest.mark.parametrize("attempt", range(3))
async def test_a_join_redelivered_at_once_with_room_finished_ends_the_stay_once(
    storage: Any, tenant: Tenant, race: Race, attempt: int
) -> None:
    """Ana's stay is open with her camera (1); the room finishes (20) while her join is
    redelivered: both look at the room, one closes the stay and the other is a replay (DESIGN.md:
    exactly one caller closes it), one charge (held)."""
    server = await a_server(storage, tenant)
    join = server.joined("ana", stamped(0))
    await deliver(storage, join)
    await deliver(storage, camera_published(server))
    finished = server.webhook("room_finished", stamped(ROOM_END))

    received = await race(lambda s: deliver(s, join), lambda s: deliver(s, finished))
    await reap(storage)

    assert received[0].redelivered and not received[0].started
    written = await ended_with_the_room(storage, tenant, server)
    assert len(written) == 1


async def test_a_camera_redelivered_after_the_rooms_end_leaves_the_rooms_end_and_price(
    storage: Any, tenant: Tenant
) -> None:
    """The stay ended with its room (20, a guess); the camera's track_published (1) is
    redelivered (it stored no stay: a sign of life before the room's end moves nothing, and a
    guess is not replaced by another). Nothing changes, no entry is added (held)."""
    server = await a_server(storage, tenant)
    await deliver(storage, server.joined("ana", stamped(0)))
    published = camera_published(server)
    await deliver(storage, published)
    await deliver(storage, server.webhook("room_finished", stamped(ROOM_END)))
    before = await ended_with_the_room(storage, tenant, server)

    again = await deliver(storage, published)

    assert again.redelivered
    assert await ended_with_the_room(storage, tenant, server) == before


async def test_a_join_and_camera_redelivered_after_reconciliation_and_room_end_change_nothing(
    storage: Any, tenant: Tenant
) -> None:
    """Reconciliation found Ana gone: her stay ended at her last sign of life (1, the camera's
    publish), reason reconciled (a guess); room_finished (20) leaves ended stays alone. Her join
    and camera are redelivered: a guess is not replaced by another, and a sign of life dated
    before the end moves nothing (DESIGN.md: a replay returns the original result) (held)."""
    server = await livekit_server_of(storage, tenant)
    join, published = server.joined("ana", stamped(0)), camera_published(server)
    await deliver(storage, join)
    await deliver(storage, published)
    await reconcile(storage, tenant, gone(server))
    await deliver(storage, server.webhook("room_finished", stamped(ROOM_END)))
    before = await settled_stay(storage, tenant, server, "ana")
    assert (before.status, before.ended_at, before.exit_reason) == (
        SessionStatus.COMPLETED,
        stamped(1),
        RECONCILED,
    )
    written = await entries(storage, tenant, before.id)

    await deliver(storage, join)
    await deliver(storage, published)

    stay = await settled_stay(storage, tenant, server, "ana")
    assert snapshot(stay) == snapshot(before)
    assert await entries(storage, tenant, before.id) == written


# --- 4605364: a track's seconds settle the stay again in their own step ----------------------


async def test_a_late_camera_of_zero_seconds_on_a_charged_stay_writes_no_entry(
    storage: Any, tenant: Tenant
) -> None:
    """Ana's stay 0..11 is charged 11. A camera she published and unpublished within the same
    second (5) is reported late, its unpublish first: its 0 seconds change no price, so no
    adjustment is written (DESIGN.md: one adjustment per change of price) and nothing is left
    pending (held)."""
    server = await charged_stay_with_cameras(storage, tenant, 0)
    for event in ("track_unpublished", "track_published"):
        track = server.track(event, "ana", stamped(0), "TR_9", "CAMERA", stamped(5))
        await deliver(storage, track)
    await reap(storage)

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    assert stay.usage.get("video.seconds", 0) == 0
    assert (credits, len(written)) == (11, 1)
    assert await storage.sessions.pending_charges(tenant.id, 10) == []


@pytest.mark.parametrize("attempt", range(3))
async def test_copies_of_a_late_unpublish_at_once_with_the_reaper_adjust_the_charge_once(
    storage: Any, tenant: Tenant, race: Race, attempt: int
) -> None:
    """Charged 31 (the camera ended with the stay at 11); three copies of the camera's own
    unpublish (6) arrive at once while the reaper settles pending stays: one change of price,
    31 -> 21, so exactly one adjustment of -10 (DESIGN.md: "exactly once per change")."""
    server = await charged_stay_with_cameras(storage, tenant, 1)
    late = unpublish(server, "TR_1", 6)

    await race(*(lambda s: deliver(s, late),) * 3, lambda s: reap(s))
    await reap(storage)

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    assert (stay.usage, credits) == ({"video.seconds": 300}, 21)
    assert sorted(e.amount for e in written) == [-31, 10]


async def test_a_late_unpublish_shortening_the_camera_to_nothing_corrects_a_charged_stay(
    storage: Any, tenant: Tenant
) -> None:
    """Charged 31 (camera 1..11 with the stay); its own unpublish says 1: 0 seconds of camera,
    -600 in the track's step: 11 credits, one adjustment (held)."""
    server = await charged_stay_with_cameras(storage, tenant, 1)
    await deliver(storage, unpublish(server, "TR_1", 1))
    await reap(storage)

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    assert (stay.usage.get("video.seconds", 0), credits) == (0, 11)
    assert sorted(e.amount for e in written) == [-31, 20]


# --- d42df5d (b): MongoDB, a retry at the meter limit after an append that died -------------


@pytest.fixture
def dies_after_counting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next append dies after its events are stored AND counted into their sessions, before
    their marks are removed (its one command cut short after the counts: event_counting's "A
    crash between the steps leaves marked events behind")."""
    next_append_dies(monkeypatch, lambda w: not isinstance(w, UpdateMany))


@pytest.fixture
def dies_before_counting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next append dies after its events are stored, before they are counted; unlike
    `dying_append`, its marks stay younger than STALE_AFTER (30 s) until a test says otherwise."""
    next_append_dies(monkeypatch, lambda w: isinstance(w, InsertOne))


async def counted_by_an_append_that_died(storage: Any, tenant: Tenant) -> tuple[Any, Any]:
    session = await stored_session(storage, tenant)
    first = metered(session, 1, {"bytes": 300_000_000})
    with pytest.raises(ConnectionError):
        await storage.events.append(tenant.id, [(0, first)], NOW, OPEN)
    counted = await storage.sessions.get(tenant.id, session.id)
    assert (counted.usage, counted.event_count) == ({"bytes": 300_000_000}, 1)
    return session, first


@pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)
@pytest.mark.parametrize("stale", [False, True], ids=["within-30s", "stale"])
@pytest.mark.usefixtures("dies_after_counting")
async def test_a_retry_after_an_append_that_died_after_counting_takes_what_fits_the_limit(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch, stale: bool
) -> None:
    """MongoDB: event 1 (300M bytes) is stored and counted (usage 300M) by an append that died
    before removing its mark. The client retries with event 2 (500M): 800M in all, within the
    10^9 limit. API.md: a stored (session_id, sequence_no) is a duplicate and "adds nothing"
    (6a3e427: not even to the meter limit), so event 2 must be stored."""
    if stale:
        monkeypatch.setattr(event_counting, "STALE_AFTER", timedelta(seconds=-1))
    session, first = await counted_by_an_append_that_died(storage, tenant)

    second = metered(session, 2, {"bytes": 500_000_000})
    outcome = await storage.events.append(tenant.id, [(0, first), (1, second)], NOW, OPEN)

    stored = await storage.sessions.get(tenant.id, session.id)
    seen = (outcome, stored.usage, stored.event_count)
    assert (outcome.inserted, outcome.duplicates, outcome.rejections) == (1, 1, []), seen
    assert (stored.usage, stored.event_count) == ({"bytes": 800_000_000}, 2), seen


@pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)
@pytest.mark.usefixtures("dies_after_counting")
async def test_retries_at_once_after_an_append_that_died_after_counting_store_it_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """The same, three retries at once: none refuses event 2, which is stored and counted once."""
    session, first = await counted_by_an_append_that_died(storage, tenant)
    retry = [(0, first), (1, metered(session, 2, {"bytes": 500_000_000}))]

    outcomes = await race(*(lambda s: s.events.append(tenant.id, retry, NOW, OPEN),) * 3)

    stored = await storage.sessions.get(tenant.id, session.id)
    seen = (outcomes, stored.usage)
    assert [o.rejections for o in outcomes] == [[], [], []], seen
    assert sum(o.inserted for o in outcomes) == 1, seen
    assert (stored.usage, stored.event_count) == ({"bytes": 800_000_000}, 2), seen


@pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)
@pytest.mark.usefixtures("dying_append")
async def test_a_retry_of_two_sessions_after_a_dead_append_refuses_only_the_excess(
    storage: Any, tenant: Tenant
) -> None:
    """MongoDB: a dead append stored A's 1 (600M) and B's 1 (600M), uncounted. The retry adds A's
    2 (600M: 1.2e9, over the limit) and B's 2 (100M): the dead append is finished (both 1s
    counted), A's 2 refused, B's 2 stored (held)."""
    a = await stored_session(storage, tenant)
    b = await stored_session(storage, tenant)
    a1, b1 = metered(a, 1, {"bytes": 600_000_000}), metered(b, 1, {"bytes": 600_000_000})
    with pytest.raises(ConnectionError):
        await storage.events.append(tenant.id, [(0, a1), (1, b1)], NOW, OPEN)

    retry = [a1, b1, metered(a, 2, {"bytes": 600_000_000}), metered(b, 2, {"bytes": 100_000_000})]
    outcome = await storage.events.append(tenant.id, list(enumerate(retry)), NOW, OPEN)

    stored_a = await storage.sessions.get(tenant.id, a.id)
    stored_b = await storage.sessions.get(tenant.id, b.id)
    seen = (outcome, stored_a.usage, stored_b.usage)
    assert (outcome.inserted, outcome.duplicates) == (1, 2), seen
    assert [r.index for r in outcome.rejections] == [2], seen
    assert (stored_a.usage, stored_a.event_count) == ({"bytes": 600_000_000}, 1), seen
    assert (stored_b.usage, stored_b.event_count) == ({"bytes": 700_000_000}, 2), seen


# A retry within STALE_AFTER (30 s) of an append that stored events and has not counted them
# yet cannot know their fate: their count judges the meter's cap again, and may refuse them. So
# it waits for that count (IN_FLIGHT_WAIT_SECONDS), and answers them by its outcome, or as in
# flight if it has not come (the append died): never as stored while they may still be refused.
CAP = 1_000_000_000
FIRST = 600_000_000


@pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)
@pytest.mark.usefixtures("dies_before_counting")
async def test_an_event_a_quick_retry_meets_uncounted_is_not_answered_stored_while_its_append_died(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MongoDB: event 1 (600M bytes) is stored by an append that died before counting it. The
    client retries at once (within STALE_AFTER) with event 2 (300M): nothing counts event 1
    within the wait, so the answer is that it is in flight (failed, to be sent again), not a
    duplicate; event 2 is inserted. Then event 3 (200M) comes, and later a finisher (the exit,
    once the marks are stale) counts the dead append: 600M no longer fit under the cap, and
    event 1 is refused. DESIGN.md: a success answer means the write is durable, so every event
    answered as stored (2 and 3) is kept, and the usage is their sum."""
    monkeypatch.setattr(mongo_events, "IN_FLIGHT_WAIT_SECONDS", 0.2)
    session = await stored_session(storage, tenant)
    first = metered(session, 1, {"bytes": FIRST})
    with pytest.raises(ConnectionError):
        await storage.events.append(tenant.id, [(0, first)], NOW, OPEN)
    second = metered(session, 2, {"bytes": 300_000_000})
    retried = await storage.events.append(tenant.id, [(0, first), (1, second)], NOW, OPEN)
    assert (retried.inserted, retried.duplicates) == (1, 0), retried
    assert retried.rejections == [EventRejection(0, mongo_events.IN_FLIGHT)], retried

    third = metered(session, 3, {"bytes": 200_000_000})
    later = await storage.events.append(tenant.id, [(0, third)], NOW, OPEN)
    assert (later.inserted, later.rejections) == (1, []), later
    monkeypatch.setattr(event_counting, "STALE_AFTER", timedelta(seconds=-1))  # 30 s later
    exit_ = RecordExitCommand(tenant.id, session.id, at=at(5))
    await wired(storage, FakeClock(at(60))).use_cases().record_exit()(exit_)

    stored = await storage.sessions.get(tenant.id, session.id)
    kept = [e.sequence_no for e in await storage.events.find(tenant.id, session.id, 10)]
    seen = (stored.usage, kept)
    assert kept == [2, 3], seen
    assert stored.usage == {"bytes": 500_000_000}, seen


@pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)
@pytest.mark.parametrize(
    ("second_bytes", "answer"),
    [(100_000_000, "duplicate"), (500_000_000, "refused")],
    ids=["fits", "over-the-cap"],
)
@pytest.mark.usefixtures("dies_before_counting")
async def test_an_event_a_retry_meets_in_flight_is_answered_as_its_count_decides(
    storage: Any, tenant: Tenant, second_bytes: int, answer: str
) -> None:
    """MongoDB: an append A stored event 1 (600M bytes) and is still on its way to counting it
    (here: it stopped there, and its count comes 0.3 s later, as A's would). Another batch
    stores event 2. A copy B of A's batch finds event 1 stored and uncounted (met at its insert;
    with event 2 at 500M, B judges the cap itself and refuses it, but a stored event is a
    duplicate, not an error, if its count keeps it): B waits for A's count and answers event 1
    as it decided. With event 2 at 100M both fit: a duplicate. With 500M, A's count refuses
    event 1 for the cap: B answers it refused (API.md: a duplicate is an event already stored,
    and this one is not kept)."""
    session = await stored_session(storage, tenant)
    first = metered(session, 1, {"bytes": FIRST})
    with pytest.raises(ConnectionError):
        await storage.events.append(tenant.id, [(0, first)], NOW, OPEN)
    (of_a,) = await marked(storage, session)
    second = metered(session, 2, {"bytes": second_bytes})
    assert (await storage.events.append(tenant.id, [(0, second)], NOW, OPEN)).inserted == 1

    b, _ = await asyncio.gather(
        storage.events.append(tenant.id, [(0, first)], NOW, OPEN),
        counts_later(storage, tenant, [of_a], 0.3),
    )

    stored = await storage.sessions.get(tenant.id, session.id)
    kept = [e.sequence_no for e in await storage.events.find(tenant.id, session.id, 10)]
    seen = (b, stored.usage, kept)
    assert b.inserted == 0, seen
    if answer == "duplicate":
        assert (b.duplicates, b.rejections) == (1, []), seen
        assert (kept, stored.usage) == ([1, 2], {"bytes": FIRST + second_bytes}), seen
    else:
        assert b.duplicates == 0, seen
        (rejection,) = b.rejections
        assert rejection.index == 0 and "would reach" in rejection.error, seen
        assert (kept, stored.usage) == ([2], {"bytes": second_bytes}), seen
