"""A hostile review of 7bdd60f: the reaper's sweep of open LiveKit stays in rooms that finished
(EndStaysInFinishedRooms, FinishedRooms.which_finished), on every store, racing every other ender
of a stay. Each test states the guarantee of README.md ("LiveKit") / DESIGN.md it holds the
stores to: a stay is closed once and charged once (the ledger its sum); the room's end is a guess
that the participant's own `left` (or a client's exit) replaces once; a stay stored after its room
finished ends with it, "should the handling of that stay's webhook stop halfway, the reaper's next
run ends it with its room"."""

import threading
from datetime import timedelta
from typing import Any

import pytest

from application.livekit import open_stays
from application.sessions.reap_stale_sessions import Reaped, ReapStaleSessionsCommand
from application.sessions.record_exit import RecordExitCommand
from domain.credits import EntryKind
from domain.erasure import is_pseudonym
from domain.livekit import KIND, LiveKitAccount
from domain.session import RECONCILED, ROOM_FINISHED, Session, SessionStatus
from domain.staleness import Staleness
from domain.tenants import Tenant
from tests.contract.builders import ChargesApart, a_session, add_tenant, at, wired
from tests.contract.erasure_builders import erase
from tests.contract.races import HoldsAfterErasing, Pause, Race, after, wait_for
from tests.contract.test_livekit_stay_ends import PauseNth
from tests.contract.test_livekit_stays import gone, livekit_server_of, reconcile
from tests.contract.test_redelivery_review import (
    CAMERA_SECONDS,
    ROOM_END,
    WITH_THE_ROOM,
    dies_at_the_rooms_look,
    ended_with_the_room,
)
from tests.contract.test_todays_fixes_review import (
    a_server,
    books_of,
    deliver,
    entries,
    reap,
    stamped,
    stay_of,
    unpublish,
)
from tests.fakes import FakeClock, FakeTally
from tests.livekit_server import LiveKitServer

pytestmark = pytest.mark.anyio

# Ana leaves at 5 (before the room's end, 20): 5 minutes of stay, 4 of camera (published at 1).
LEFT_EARLY, LEFT_EARLY_PRICE = 5, 5 + 2 * 4
# Her `left` stamped 25, after the room's end: 25 minutes of stay, 24 of camera.
LEFT_LATE, LEFT_LATE_PRICE = 25, 25 + 2 * 24


def published(server: LiveKitServer, who: str = "ana", joined: float = 0, minute: float = 1) -> Any:
    return server.track(
        "track_published", who, stamped(joined), f"TR_{who}", "CAMERA", stamped(minute)
    )


async def left_open(
    storage: Any,
    tenant: Tenant,
    server: LiveKitServer,
    who: str = "ana",
    joined: float = 0,
    camera: float = 1,
    finish: bool = True,
) -> Session:
    """The defect 7bdd60f mends: room_finished (20) came first; the stay's first webhook is its
    camera's track_published; its handling dies after storing the stay, before its look at the
    room; redelivered, it finds its stay stored and does not look: the stay is left open."""
    if finish:
        await deliver(storage, server.webhook("room_finished", stamped(ROOM_END)))
    webhook = published(server, who, joined, camera)
    with pytest.raises(ConnectionError):
        await deliver(storage, webhook, **dies_at_the_rooms_look(storage))
    await deliver(storage, webhook)
    stay: Session | None = await storage.sessions.get(tenant.id, stay_of(server, who))
    assert stay is not None and stay.is_active, stay
    return stay


async def reaping(
    storage: Any, minute: float = 95, tally: FakeTally | None = None, **ports: Any
) -> Reaped:
    """A reaper run at `minute`, telling `tally` its charges, any of its storage ports
    replaced."""
    jobs = wired(storage, FakeClock(at(minute)), tally=tally, **ports).jobs()
    reaped: Reaped = await jobs.reap_stale_sessions()(ReapStaleSessionsCommand())
    return reaped


def paused(
    storage: Any, port: str, method: str, reached: threading.Event, go: threading.Event, **how: Any
) -> dict[str, Any]:
    """The racer's `port` whose first call of `method` waits for the other racer (races.Pause)."""
    return {port: Pause(getattr(storage, port), method, reached, go, **how)}


def charged_apart(storage: Any, paused_port: str = "ledger") -> dict[str, Any]:
    """For a pause in the ledger's settlement: the racer's sessions, which leave the sweep's
    charge to that settlement instead of settling it in the close (ChargesApart)."""
    return {"sessions": ChargesApart(storage.sessions)} if paused_port == "ledger" else {}


async def ended_where_she_left(
    storage: Any, tenant: Tenant, server: LiveKitServer, minute: int, price: int
) -> None:
    """README: the participant's own `left` replaces the room's end (a guess), once: the stay
    ends where she left, completed, her camera with it, charged once at that price."""
    await reap(storage, 100)  # settles what a lost claim left pending
    stay, credits, _ = await books_of(storage, tenant, stay_of(server))
    seen = (stay.status, stay.ended_at, stay.exit_reason, stay.usage, credits)
    assert (stay.status, stay.ended_at) == (SessionStatus.COMPLETED, stamped(minute)), seen
    assert stay.exit_reason != ROOM_FINISHED, seen
    assert stay.usage == {"video.seconds": (minute - 1) * 60}, seen
    assert credits == price, seen


# --- 1. The sweep racing the stay's other enders ---------------------------------------------

SWEEP_PAUSES = {
    # the sweep has its page and the finished rooms: it holds the stay as open
    "after-which-finished": ("finished_rooms", "which_finished", {"before": False}),
    # it ended the open camera at the room's end (20) and is about to close the stay
    "before-close": ("sessions", "close", {}),
    # it closed the stay at 20, not yet charged
    "after-close": ("sessions", "close", {"before": False}),
    # it is about to charge the stay 58
    "before-settle": ("ledger", "settle", {}),
}


@pytest.mark.parametrize("pause", SWEEP_PAUSES)
async def test_her_left_before_the_rooms_end_overtaking_the_sweep_anywhere_ends_it_where_she_left(
    storage: Any, tenant: Tenant, race: Race, pause: str
) -> None:
    """Forced: the sweep stops at one step while her `left` (5) is handled from start to end,
    then goes on. README: her `left` replaces the room's end, whichever comes first."""
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)
    port, method, how = SWEEP_PAUSES[pause]
    reached, go = threading.Event(), threading.Event()
    left = server.left("ana", stamped(0), stamped(LEFT_EARLY))

    await race(
        lambda s: reaping(
            s, **charged_apart(s, port), **paused(s, port, method, reached, go, **how)
        ),
        after(reached, go, lambda s: deliver(s, left)),
    )

    await ended_where_she_left(storage, tenant, server, LEFT_EARLY, LEFT_EARLY_PRICE)


async def test_her_left_between_the_sweeps_close_and_its_look_at_the_tracks_keeps_her_camera(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Forced: the sweep closed the stay at 20 and stops before its second look at the tracks
    (LiveKitStays.end's follow_end); her `left` (5) corrects the stay and ends the camera at 5;
    the sweep's look must take the end the stay kept (5), not its own 20."""
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)
    reached, go = threading.Event(), threading.Event()
    left = server.left("ana", stamped(0), stamped(LEFT_EARLY))

    async def sweep(s: Any) -> Any:
        second_look = PauseNth(s.tracks, "tracks_ending_with_stay", 2, reached, go)
        return await reaping(s, tracks=second_look)

    await race(sweep, after(reached, go, lambda s: deliver(s, left)))

    await ended_where_she_left(storage, tenant, server, LEFT_EARLY, LEFT_EARLY_PRICE)


@pytest.mark.parametrize("attempt", range(3))
async def test_the_sweep_and_her_left_after_the_rooms_end_at_once_end_it_where_she_left(
    storage: Any, tenant: Tenant, race: Race, attempt: int
) -> None:
    """Her `left` is stamped 25, after the room's end (20): README, it still replaces the
    room's end, so whichever comes first the stay ends at 25 with 24 minutes of camera."""
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)
    left = server.left("ana", stamped(0), stamped(LEFT_LATE))

    await race(lambda s: reaping(s), lambda s: deliver(s, left))

    await ended_where_she_left(storage, tenant, server, LEFT_LATE, LEFT_LATE_PRICE)


@pytest.mark.parametrize("attempt", range(3))
async def test_the_sweep_and_room_finished_redelivered_at_once_end_the_stay_once(
    storage: Any, tenant: Tenant, race: Race, attempt: int
) -> None:
    """LiveKit redelivers the room's room_finished (same id) while the reaper sweeps: both end
    the stay with the room, one closes it, the other is a replay; one charge entry of 58."""
    server = await a_server(storage, tenant)
    finished = server.webhook("room_finished", stamped(ROOM_END))
    await deliver(storage, finished)
    await left_open(storage, tenant, server, finish=False)

    reaped, received = await race(lambda s: reaping(s), lambda s: deliver(s, finished))

    assert received.redelivered
    assert reaped.closed + len(received.ended) == 1, (reaped, received)
    written = await ended_with_the_room(storage, tenant, server)
    assert len(written) == 1, [(e.kind, e.amount, e.session_revision) for e in written]


@pytest.mark.parametrize("attempt", range(3))
async def test_the_sweep_and_her_join_redelivered_at_once_end_the_stay_once(
    storage: Any, tenant: Tenant, race: Race, attempt: int
) -> None:
    """Her join, redelivered, finds the stay stored and still open, so it looks at the room
    (ReceiveLiveKitWebhook._joined) while the reaper sweeps: one of the two closes the stay,
    one charge entry of 58."""
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)
    join = server.joined("ana", stamped(0))

    reaped, received = await race(lambda s: reaping(s), lambda s: deliver(s, join))

    assert not received.started
    assert reaped.closed <= 1, reaped
    written = await ended_with_the_room(storage, tenant, server)
    assert len(written) == 1, [(e.kind, e.amount, e.session_revision) for e in written]


@pytest.mark.parametrize("attempt", range(3))
async def test_the_sweep_and_the_cameras_late_unpublish_at_once_count_the_cameras_own_end(
    storage: Any, tenant: Tenant, race: Race, attempt: int
) -> None:
    """The camera's own track_unpublished (10) arrives as the sweep ends the stay (and its
    open camera) at 20: README, the track's own end replaces the stay's; 9 minutes of camera,
    20 + 18 credits, charged once (the ledger its sum)."""
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)

    await race(lambda s: reaping(s), lambda s: deliver(s, unpublish(server, "TR_ana", 10)))
    await reap(storage, 100)

    stay, credits, _ = await books_of(storage, tenant, stay_of(server))
    assert (stay.ended_at, stay.exit_reason) == (stamped(ROOM_END), ROOM_FINISHED)
    assert (stay.usage, credits) == ({"video.seconds": 9 * 60}, ROOM_END + 2 * 9)


async def test_the_cameras_unpublish_between_the_sweeps_look_at_the_tracks_and_its_end_wins(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Forced: the sweep found the camera open (its first look) and stops; the unpublish (10)
    is handled whole; the sweep ends the camera with the stay at 20, an end the camera's own
    must survive."""
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)
    reached, go = threading.Event(), threading.Event()
    late = unpublish(server, "TR_ana", 10)

    await race(
        lambda s: reaping(
            s, **paused(s, "tracks", "tracks_ending_with_stay", reached, go, before=False)
        ),
        after(reached, go, lambda s: deliver(s, late)),
    )
    await reap(storage, 100)

    stay, credits, _ = await books_of(storage, tenant, stay_of(server))
    assert (stay.ended_at, stay.exit_reason) == (stamped(ROOM_END), ROOM_FINISHED)
    assert (stay.usage, credits) == ({"video.seconds": 9 * 60}, ROOM_END + 2 * 9)


@pytest.mark.parametrize("attempt", range(3))
async def test_the_sweep_and_reconciliation_at_once_close_the_stay_once_at_one_guess(
    storage: Any, tenant: Tenant, race: Race, attempt: int
) -> None:
    """The account has a URL; reconciliation finds Ana gone (her end: her last sign of life,
    1, reconciled) while the reaper sweeps (the room's end, 20). Both are guesses and a guess
    does not replace another (domain.session.Session.close), so either may stand, but it is one
    end, with the tracks and the charge of that end, charged once."""
    server = await livekit_server_of(storage, tenant)
    await left_open(storage, tenant, server)

    await race(lambda s: reaping(s), lambda s: reconcile(s, tenant, gone(server)))
    await reap(storage, 100)

    stay, credits, _ = await books_of(storage, tenant, stay_of(server))
    outcome = (stay.ended_at, stay.exit_reason, stay.usage.get("video.seconds", 0), credits)
    assert outcome in {
        (stamped(ROOM_END), ROOM_FINISHED, CAMERA_SECONDS, WITH_THE_ROOM),
        (stamped(1), RECONCILED, 0, 1),
    }, outcome


@pytest.mark.parametrize("attempt", range(3))
async def test_three_reapers_at_once_sweep_the_stay_once(
    storage: Any, tenant: Tenant, race: Race, attempt: int
) -> None:
    """DESIGN.md: background jobs are safe to run concurrently on several machines. Three
    reapers sweep at once: one closes the stay (the runs' closed counts add up to 1), one
    charge of 58."""
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)

    runs = await race(*(lambda s: reaping(s),) * 3)

    assert sum(r.closed for r in runs) == 1, runs
    assert [f for r in runs for f in r.failures] == []
    written = await ended_with_the_room(storage, tenant, server)
    assert len(written) == 1, [(e.kind, e.amount, e.session_revision) for e in written]


async def test_two_reapers_count_the_sweeps_charge_once_between_them(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Forced: reaper A's sweep closes the stay and stops before charging it; reaper B runs
    whole (its pending loop settles the stay, 58, and counts it: revision 0); A's settlement
    then finds it settled. The `sessionmeter_credits_charged` metric hears of the charge from
    the settlement that wrote it: 58, once, between the two runs."""
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)
    reached, go = threading.Event(), threading.Event()
    tally = FakeTally()

    await race(
        lambda s: reaping(
            s, tally=tally, **charged_apart(s), **paused(s, "ledger", "settle", reached, go)
        ),
        after(reached, go, lambda s: reaping(s, tally=tally)),
    )

    await ended_with_the_room(storage, tenant, server)
    assert tally.told == [WITH_THE_ROOM]


@pytest.mark.parametrize("attempt", range(3))
async def test_the_sweep_and_a_clients_exit_at_once_end_the_stay_once_where_the_client_said(
    storage: Any, tenant: Tenant, race: Race, tally: FakeTally, attempt: int
) -> None:
    """The product's back end exits the stay (RecordExit, an app key, at 5) while the reaper
    sweeps. DESIGN.md: a client's end is final and replaces a guess (the room's end) once; so
    whichever comes first the stay ends at 5, completed, and is charged once (ledger == charge),
    and the tally hears of one first charge, whichever closed it (in its close, where the store
    settles there)."""
    server = await a_server(storage, tenant)
    stay = await left_open(storage, tenant, server)
    command = RecordExitCommand(tenant.id, stay.id, at=stamped(LEFT_EARLY))

    async def exits(s: Any) -> Any:
        return await wired(s, FakeClock(at(90))).use_cases().record_exit()(command)

    await race(lambda s: reaping(s), exits)
    await reap(storage, 100)

    ended, _, _ = await books_of(storage, tenant, stay.id)
    assert (ended.status, ended.ended_at) == (SessionStatus.COMPLETED, stamped(LEFT_EARLY))
    assert ended.exit_reason != ROOM_FINISHED
    # One first charge, whatever its price: the sweep's (58), or the exit's, before or after
    # its tracks' seconds reach the stay (5, or, seen once on MongoDB, 43: the stay of 5 with
    # the camera the sweep ended with the room); adjusted to 13 after.
    assert len(tally.told) == 1, tally.told


@pytest.mark.parametrize("order", ["sweep-first", "exit-first"])
async def test_a_clients_exit_and_the_sweep_leave_the_camera_within_the_stay(
    storage: Any, tenant: Tenant, order: str
) -> None:
    """The same two enders one after the other. README: "a stay that ends ends its open
    tracks", and a correction of the stay's end moves the tracks that ended with it. The stay
    ends at 5, so the camera (1) has 4 minutes: 5 + 8 credits, whichever came first."""
    server = await a_server(storage, tenant)
    stay = await left_open(storage, tenant, server)
    command = RecordExitCommand(tenant.id, stay.id, at=stamped(LEFT_EARLY))
    record_exit = wired(storage, FakeClock(at(90))).use_cases().record_exit()
    if order == "sweep-first":
        await reaping(storage)
        await record_exit(command)
    else:
        await record_exit(command)
        await reaping(storage)

    await ended_where_she_left(storage, tenant, server, LEFT_EARLY, LEFT_EARLY_PRICE)


async def test_a_stay_stored_while_the_reaper_is_past_its_sweep_ends_with_its_room(
    storage: Any, race: Race
) -> None:
    """The tenant's livekit stays idle out after 10 minutes. A reaper has swept (nothing open
    yet) and stops before its timeouts; the crash of 7bdd60f happens meanwhile (the stay is
    stored, its look at the room never made), and the reaper's timeouts then close the stay at
    its last sign of life (1, timed_out). README: "should the handling of that stay's webhook
    stop halfway, the reaper's next run ends it with its room"; DESIGN.md / Session.close: the
    reaper's end is a guess that later evidence (a guess too) replaces. Had the crash come a
    moment earlier, the sweep would have ended it at 20 for 58 credits; the run whose
    timeouts closed it must reach the same end."""
    tenant = await add_tenant(storage, "idle-rooms", idle_timeouts={KIND: 600})
    server = await a_server(storage, tenant)
    await deliver(storage, server.webhook("room_finished", stamped(ROOM_END)))
    webhook = published(server)
    reached, go = threading.Event(), threading.Event()
    tally = FakeTally()

    async def crashes(s: Any) -> None:
        with pytest.raises(ConnectionError):
            await deliver(s, webhook, **dies_at_the_rooms_look(s))

    reaped, _ = await race(
        lambda s: reaping(s, tally=tally, **paused(s, "sessions", "time_out_idle", reached, go)),
        after(reached, go, crashes),
    )
    counted = list(tally.told)
    await deliver(storage, webhook)  # LiveKit redelivers it
    later = [await reaping(storage, 96, tally), await reaping(storage, 97, tally)]

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    seen = (stay.status, stay.ended_at, stay.exit_reason, stay.usage, credits)
    assert (stay.ended_at, stay.exit_reason) == (stamped(ROOM_END), ROOM_FINISHED), seen
    assert credits == WITH_THE_ROOM, seen
    # The reaper that timed it out gave it its room's end before charging it, and counted that
    # charge once (the redelivered camera's seconds came after: an adjustment, not counted).
    charged = [-e.amount for e in written if e.kind is EntryKind.CHARGE]
    assert (reaped.closed, counted, tally.told) == (1, charged, charged), written
    assert [r.closed for r in later] == [0, 0]


async def test_a_reaper_timing_out_the_stay_the_sweep_holds_as_open_gives_way_to_the_room(
    storage: Any, race: Race
) -> None:
    """Forced, the other side of the test above: a reaper's sweep holds the stay as open (its
    page read) and stops; the stay is timed out meanwhile (another reaper's timeouts, at its
    last sign of life, 1); the sweep's end with the room (a guess) then replaces the reaper's
    (Session.close). The room's end stands, charged once, 58."""
    tenant = await add_tenant(storage, "idle-rooms", idle_timeouts={KIND: 600})
    server = await a_server(storage, tenant)
    stay = await left_open(storage, tenant, server)
    reached, go = threading.Event(), threading.Event()

    async def times_out(s: Any) -> Any:
        return await s.sessions.time_out_idle(
            tenant.id, _idle_after(at(95)), 10, frozenset({KIND}), at(95), timedelta(days=7)
        )

    await race(
        lambda s: reaping(
            s, **paused(s, "finished_rooms", "which_finished", reached, go, before=False)
        ),
        after(reached, go, times_out),
    )
    await reap(storage, 100)

    ended, credits, written = await books_of(storage, tenant, stay.id)
    seen = (ended.status, ended.ended_at, ended.exit_reason, credits, written)
    assert (ended.ended_at, ended.exit_reason) == (stamped(ROOM_END), ROOM_FINISHED), seen
    assert credits == WITH_THE_ROOM, seen


def _idle_after(now: Any) -> Staleness:
    """Cutoffs at `now` by which a stay last seen 10 minutes before is idle."""
    return Staleness(default=now - timedelta(minutes=10))


# --- 2. Rooms by sid, tenants, stays the sweep must not touch --------------------------------


async def test_a_room_name_used_again_ends_only_the_stays_of_the_instance_that_finished(
    storage: Any, tenant: Tenant
) -> None:
    """`bootcamp` finished (RM_bootcamp, 20) with Ana's stay left open in it; `bootcamp` is
    opened again (RM_bootcamp_2) where Ana (the same participant sid) and Ben are: the sweep
    ends the first stay with its room, and neither of the new room's; when the new room
    finishes (50), its stays end at 50, not at the old room's end."""
    old = await a_server(storage, tenant)
    await left_open(storage, tenant, old)
    new = LiveKitServer()
    new.room = {"sid": "RM_bootcamp_2", "name": "bootcamp"}
    for who in ("ana", "ben"):
        await deliver(storage, new.joined(who, stamped(30)))
        await deliver(storage, published(new, who, joined=30, minute=31))

    reaped = await reaping(storage)

    assert reaped.closed == 1, reaped
    await ended_with_the_room(storage, tenant, old)
    for who in ("ana", "ben"):
        assert (await storage.sessions.get(tenant.id, stay_of(new, who))).is_active, who
    await deliver(storage, new.webhook("room_finished", stamped(50)))
    await reaping(storage, 96)
    for who in ("ana", "ben"):
        stay = await storage.sessions.get(tenant.id, stay_of(new, who))
        assert (stay.ended_at, stay.exit_reason) == (stamped(50), ROOM_FINISHED), who
        assert stay.usage == {"video.seconds": 19 * 60}, who


async def test_tenants_with_the_same_room_sid_end_only_the_stays_of_the_room_that_finished(
    storage: Any, tenant: Tenant
) -> None:
    """Two tenants' LiveKit servers each have a room RM_bootcamp and a participant PA_ana (so
    their stays have the same id, each in its tenant). Only the first tenant's room finished:
    the sweep ends its stay, and not the other tenant's (FinishedRooms are a tenant's)."""
    mine = await a_server(storage, tenant)
    other_tenant = await add_tenant(storage, "other")
    theirs = LiveKitServer(key="APIother")
    account = LiveKitAccount(theirs.key, other_tenant.id, theirs.secret, None)
    await storage.livekit_accounts.add(account)
    await deliver(storage, theirs.joined("ana", stamped(0)))
    await deliver(storage, published(theirs))
    await left_open(storage, tenant, mine)

    reaped = await reaping(storage)

    assert reaped.closed == 1, reaped
    await ended_with_the_room(storage, tenant, mine)
    their_stay = await storage.sessions.get(other_tenant.id, stay_of(theirs))
    assert their_stay is not None and their_stay.is_active, their_stay


async def test_sessions_without_a_room_sid_or_of_another_kind_are_left_alone(
    storage: Any,
) -> None:
    """Beside Ana's stay left open in the finished room: a livekit session without attributes,
    one whose room_sid is not a string, and a webinar session (webinars never idle here) of
    resource `bootcamp` whose attributes name the finished room. The sweep ends Ana's stay
    only, and fails on nothing."""
    tenant = await add_tenant(storage, "webinars-too", idle_timeouts={"webinar": None})
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)
    others = [
        a_session(tenant, kind=KIND, resource_id="bootcamp", subject_id="cy"),
        a_session(
            tenant, kind=KIND, resource_id="bootcamp", subject_id="di", attributes={"room_sid": 7}
        ),
        a_session(
            tenant,
            kind="webinar",
            resource_id="bootcamp",
            subject_id="ed",
            attributes={"room_sid": "RM_bootcamp", "participant_sid": "PA_ed"},
        ),
    ]
    for session in others:
        assert await storage.sessions.add(session)

    reaped = await reaping(storage)

    assert (reaped.closed, reaped.failures) == (1, []), reaped
    await ended_with_the_room(storage, tenant, server)
    for session in others:
        assert (await storage.sessions.get(tenant.id, session.id)).is_active, session


# --- 3. More open stays than a page ------------------------------------------------------------

ROOMS = 10  # stays go round rooms r0..r9
PAGE = 50  # the sweep's pages (500 in service), so that a few stays make several pages
STAYS = 2 * PAGE + 5  # more than two pages, many starting at the same instant
FINISHED = {"r0": 30, "r3": 40}  # rooms remembered finished, and when (minutes)


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(open_stays, "PAGE", PAGE)


def crowd(tenant: Tenant) -> list[Session]:
    """STAYS open livekit stays, 10 starting each minute, round the rooms: the finished
    rooms' stays are spread over every page (pages go newest first, by start then id)."""
    return [
        a_session(
            tenant,
            n // 10,
            kind=KIND,
            resource_id=f"r{n % ROOMS}",
            subject_id=f"p{n}",
            attributes={"room_sid": f"RM_r{n % ROOMS}", "participant_sid": f"PA_p{n}"},
        )
        for n in range(STAYS)
    ]


async def stored_crowd(storage: Any, tenant: Tenant) -> list[Session]:
    await a_server(storage, tenant, rated=False)
    stays = crowd(tenant)
    for stay in stays:
        assert await storage.sessions.add(stay)
    for room, minute in FINISHED.items():
        await storage.finished_rooms.finish(tenant.id, f"RM_{room}", stamped(minute))
    return stays


@pytest.mark.usefixtures("small_pages")
async def test_every_page_of_open_stays_is_swept_and_only_the_finished_rooms_stays_end(
    storage: Any, tenant: Tenant
) -> None:
    stays = await stored_crowd(storage, tenant)

    reaped = await reaping(storage)

    expected = {s.id: FINISHED.get(s.resource_id) for s in stays}
    assert reaped.closed == sum(1 for m in expected.values() if m is not None), reaped
    for stay in stays:
        stored = await storage.sessions.get(tenant.id, stay.id)
        minute = expected[stay.id]
        if minute is None:
            assert stored.is_active, stored
        else:
            assert (stored.ended_at, stored.exit_reason) == (stamped(minute), ROOM_FINISHED)


@pytest.mark.usefixtures("small_pages")
async def test_stays_ending_while_the_sweep_pages_hide_none_of_the_finished_rooms_stays(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Forced: the sweep has handled its first page and stops before reading the second;
    meanwhile room r5 finishes (50, its webhook ends r5's stays on every page) and the stays of
    r1 on the first two pages are left (their `left`s, 60). The sweep goes on from where it
    stopped: every stay of r0 and r3 still ends with its room, each stay once."""
    stays = await stored_crowd(storage, tenant)
    r5 = LiveKitServer(room="r5")
    r1_early = [s for s in stays if s.resource_id == "r1"][-6:]  # the newest: first pages
    reached, go = threading.Event(), threading.Event()

    async def meanwhile(s: Any) -> None:
        await deliver(s, r5.webhook("room_finished", stamped(50)))
        use_cases = wired(s, FakeClock(at(90))).use_cases()
        for stay in r1_early:
            await use_cases.record_exit()(RecordExitCommand(tenant.id, stay.id, at=stamped(60)))

    async def sweep(s: Any) -> Reaped:
        second_page = PauseNth(s.sessions, "find", 2, reached, go)
        return await reaping(s, sessions=second_page)

    reaped, _ = await race(sweep, after(reached, go, meanwhile))

    left = {s.id for s in r1_early}
    swept = 0
    for stay in stays:
        stored = await storage.sessions.get(tenant.id, stay.id)
        if stay.resource_id in FINISHED:
            swept += 1
            when = stamped(FINISHED[stay.resource_id])
            assert (stored.ended_at, stored.exit_reason) == (when, ROOM_FINISHED), stored
        elif stay.resource_id == "r5":
            assert (stored.ended_at, stored.exit_reason) == (stamped(50), ROOM_FINISHED), stored
        elif stay.id in left:
            assert (stored.ended_at, stored.exit_reason) == (stamped(60), None), stored
        else:
            assert stored.is_active, stored
    # The sweep may also end r5's stays it reads after the room finished: never another's.
    r5_count = sum(1 for s in stays if s.resource_id == "r5")
    assert swept <= reaped.closed <= swept + r5_count, (reaped.closed, swept)


# --- 4. A stay that began after its room's end -------------------------------------------------


@pytest.mark.parametrize("seconds_after", [0, 1, 61])
async def test_a_stay_begun_after_its_rooms_end_ends_when_it_began(
    storage: Any, tenant: Tenant, seconds_after: int
) -> None:
    """LiveKit stamps whole seconds: Ana's join is stamped as late as (or later than) the room's
    end (20), her camera published as she joined. The sweep ends the stay when it began
    (end_with_room: never before its start), 0 seconds of camera, nothing refused, charged
    once (the ledger its sum)."""
    server = await a_server(storage, tenant)
    joined = ROOM_END + seconds_after / 60
    stay = await left_open(storage, tenant, server, joined=joined, camera=joined)

    reaped = await reaping(storage)

    assert (reaped.closed, reaped.failures) == (1, []), reaped
    ended, credits, _ = await books_of(storage, tenant, stay.id)
    assert (ended.status, ended.ended_at, ended.exit_reason) == (
        SessionStatus.COMPLETED,
        stamped(joined),
        ROOM_FINISHED,
    )
    assert ended.usage.get("video.seconds", 0) == 0, ended.usage
    assert credits == 0


async def test_a_room_whose_end_is_ahead_of_the_reapers_clock_is_reported_and_others_still_end(
    storage: Any, tenant: Tenant
) -> None:
    """LiveKit's clock runs ahead: room RM_ahead is remembered finished at 110, more than the
    5 minutes of skew ahead of the reaper's clock (95). Ben's stay in it is refused (InvalidInput,
    a DomainError: reported in Reaped.failures), Ana's in the other finished room still ends;
    a run once the clock has passed 105 ends Ben's stay at 110."""
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)
    ahead = LiveKitServer(room="ahead")
    await deliver(storage, ahead.joined("ben", stamped(0)))
    await storage.finished_rooms.finish(tenant.id, ahead.room["sid"], stamped(110))

    reaped = await reaping(storage, 95)

    assert reaped.closed == 1, reaped
    ben = stay_of(ahead, "ben")
    assert [f.tenant_name for f in reaped.failures] == [tenant.name], reaped.failures
    assert ben in reaped.failures[0].error, reaped.failures
    await ended_with_the_room(storage, tenant, server)
    assert (await storage.sessions.get(tenant.id, ben)).is_active

    later = await reaping(storage, 106)

    assert (later.closed, later.failures) == (1, []), later
    stay = await storage.sessions.get(tenant.id, ben)
    assert (stay.ended_at, stay.exit_reason) == (stamped(110), ROOM_FINISHED)


# --- 5. The subject's erasure racing the sweep ------------------------------------------------


async def erased_and_charged_once(storage: Any, tenant: Tenant, server: LiveKitServer) -> None:
    """The stay ended with its room, under the pseudonym, charged once (58) on the pseudonym's
    ledger; nothing of it is left on Ana's (DESIGN.md: the books still balance)."""
    await reap(storage, 100)
    await reap(storage, 101)
    stay = await storage.sessions.get(tenant.id, stay_of(server))
    seen = (stay.status, stay.ended_at, stay.exit_reason, stay.subject_id, stay.charge_state)
    assert stay.subject_id is not None and is_pseudonym(stay.subject_id), seen
    # The erasure clears exit reasons (domain.erasure.ERASED_FIELDS): one given before it goes.
    assert stay.ended_at == stamped(ROOM_END) and stay.exit_reason in (ROOM_FINISHED, None), seen
    assert stay.charge is not None and stay.charge.credits == WITH_THE_ROOM, seen
    written = await entries(storage, tenant, stay.id, stay.subject_id)
    assert -sum(e.amount for e in written) == WITH_THE_ROOM, written
    assert await entries(storage, tenant, stay.id, "ana") == []


@pytest.mark.parametrize("attempt", range(3))
async def test_the_sweep_and_the_subjects_erasure_at_once_charge_the_pseudonym_once(
    storage: Any, tenant: Tenant, race: Race, attempt: int
) -> None:
    """On MongoDB, one run in two failed before 'MongoErasure._erase_session': the sweep's
    exit gave the stay its reason between the erasure's read and its guarded write, the
    erasure skipped it, and the stay and its charge stayed under Ana's id."""
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)

    await race(lambda s: reaping(s), lambda s: erase(s, tenant))

    await erased_and_charged_once(storage, tenant, server)


async def test_an_erasure_between_the_sweeps_page_and_its_end_of_the_stay(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Forced: the sweep read the stay (subject ana) and the finished rooms, and stops; the
    erasure runs whole; the sweep ends the stay it read: charged under the pseudonym."""
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)
    reached, go = threading.Event(), threading.Event()

    await race(
        lambda s: reaping(
            s, **paused(s, "finished_rooms", "which_finished", reached, go, before=False)
        ),
        after(reached, go, lambda s: erase(s, tenant)),
    )

    await erased_and_charged_once(storage, tenant, server)


async def test_the_sweep_during_an_erasure_holding_the_ledgers_charges_the_pseudonym_once(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """The erasure gave the stay its pseudonym and holds the ledgers 1.5 s; the reaper sweeps
    meanwhile: the stay closes, its charge waits for the hold or is left pending (the reaper's
    next run settles it), once, on the pseudonym's ledger."""
    server = await a_server(storage, tenant)
    await left_open(storage, tenant, server)
    holding = threading.Event()

    async def forget(s: Any) -> Any:
        return await erase(s, tenant, erasure=HoldsAfterErasing(s.erasure, holding, 1.5))

    async def sweep(s: Any) -> Reaped:
        await wait_for(holding)
        return await reaping(s)

    await race(forget, sweep)

    await erased_and_charged_once(storage, tenant, server)
