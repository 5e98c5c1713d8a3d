"""A hostile review of 843c6cc, 4c9f480 and 39d6081: who counts a session's first charge in
`sessionmeter_credits_charged` (since 3af3167 the settlement that writes a first charge tells the
ChargeTally: `tally` below hears every container of a test), and the reaper giving the stays its
timeouts closed in finished rooms their room's end (EndStaysInFinishedRooms.timed_out).

The goal the commits state: every first charge (the ledger's `charge` entry of a session) is
counted exactly once across every caller that may write it (a client's exit, a reaper's batch or
sweep or pending loop, a LiveKit webhook, reconciliation), and no correction's `adjustment` is
counted. DESIGN.md: "charging a session: at most one ledger entry per session, ever" (one per
revision, since wave 2), "the balance always equals the sum of the ledger"; "Background jobs
(reaper, rollups, retention) are safe to run concurrently on several machines". README (Metrics):
"/metrics ... counts ... credits charged".

Each test states the guarantee it holds the code to. The defects it found (five paths counting
nothing, MongoDB batch claims finished by another caller, a room that finished after the timeouts)
were mended in 3af3167 and the commits after; every test stays as a regression test."""

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.sessions.reap_stale_sessions import Reaped, ReapStaleSessionsCommand
from application.sessions.record_exit import RecordedExit, RecordExitCommand
from domain.credits import EntryKind, Rate
from domain.livekit import KIND
from domain.session import ROOM_FINISHED, Session, SessionStatus
from domain.staleness import Staleness
from domain.tenants import Tenant
from tests.app_client import Api
from tests.contract.builders import OPEN, a_session, add_tenant, at, wired
from tests.contract.races import Race, after, wait_for
from tests.contract.test_finished_room_sweep_review import paused, published, reaping
from tests.contract.test_redelivery_review import ROOM_END, dies_at_the_rooms_look
from tests.contract.test_todays_fixes_review import (
    a_server,
    books_of,
    deliver,
    entries,
    stamped,
    stay_of,
    unpublish,
)
from tests.fakes import FakeClock, FakeTally
from tests.livekit_server import LiveKitServer
from tests.metrics_samples import samples_of, value

anyio = pytest.mark.anyio

WINDOW = timedelta(days=7)


def first_charge(written: list[Any]) -> int:
    """The credits of the session's first charge, as the ledger holds it (its `charge` entry;
    a first charge of 0 writes none)."""
    charges = [e for e in written if e.kind is EntryKind.CHARGE]
    assert len(charges) <= 1, [(e.kind, e.amount, e.session_revision) for e in written]
    return -sum(int(e.amount) for e in charges)


def kinds(written: list[Any]) -> list[tuple[str, int]]:
    return [(e.kind.value, e.amount) for e in written]


async def idle_tenant(storage: Any, name: str = "idle-rooms") -> tuple[Tenant, LiveKitServer]:
    """A tenant whose LiveKit stays idle out after 10 minutes (README: `idle_timeouts` names the
    kind), with a LiveKit account (no URL) and the rate 1 a minute of stay, 2 of camera."""
    tenant = await add_tenant(storage, name, idle_timeouts={KIND: 600})
    server = await a_server(storage, tenant)
    return tenant, server


async def times_out_and_dies(storage: Any, tenant: Tenant, minute: float = 95) -> list[Session]:
    """The reaper's first step (its timeouts close what has been idle 10 minutes) and nothing
    more: its process dies before charging the batch. DESIGN.md: "A session closed but not yet
    charged (crash between the two) is visible as charge_pending and settled by the reaper"."""
    now = at(minute)
    rated = frozenset(await wired(storage).use_cases().deduct_credits().rated_kinds(tenant.id))
    closed: list[Session] = await storage.sessions.time_out_idle(
        tenant.id, Staleness(default=now - timedelta(minutes=10)), 500, rated, now, WINDOW
    )
    return closed


async def reap_at(storage: Any, minute: float) -> Reaped:
    return await reaping(storage, minute)


def screen_share_audio(server: LiveKitServer, minute: float, who: str = "ana") -> Any:
    """A webhook of the stay that meters nothing (screen-share audio): only a sign of life."""
    return server.track(
        "track_published",
        who,
        stamped(0),
        f"TR_ssa_{minute}",
        "SCREEN_SHARE_AUDIO",
        stamped(minute),
    )


# --- 1. Reapers racing reapers, exits and webhooks over plain sessions -----------------------

KIOSK = Rate("kiosk", 3)
CROWD = 40


async def stale_kiosks(storage: Any, tenant: Tenant, n: int = CROWD) -> list[Session]:
    """`n` kiosk sessions of n subjects, started at 0, last seen at 2..8 minutes: idle at 95."""
    await storage.rates.put(tenant.id, KIOSK)
    made = []
    for i in range(n):
        session = a_session(tenant, 0, kind="kiosk", resource_id="booth", subject_id=f"k{i}")
        assert await storage.sessions.add(session)
        await storage.sessions.sign_of_life(tenant.id, session.id, at(2 + i % 7), at(90), OPEN)
        made.append(session)
    return made


async def assert_ended(
    storage: Any, tenant: Tenant, sessions: list[Session], status: SessionStatus, minute: float
) -> None:
    """Each of the sessions is stored ended with `status` at `minute`."""
    for session in sessions:
        stored = await storage.sessions.get(tenant.id, session.id)
        assert (stored.status, stored.ended_at) == (status, at(minute)), stored


async def first_charges_of(storage: Any, tenant: Tenant, sessions: list[Session]) -> int:
    total = 0
    for session in sessions:
        stored = await storage.sessions.get(tenant.id, session.id)
        written = await entries(storage, tenant, session.id, str(session.subject_id))
        assert stored.charge is not None, stored
        assert -sum(e.amount for e in written) == stored.charge.credits, kinds(written)
        assert len({e.session_revision for e in written}) == len(written), kinds(written)
        total += first_charge(written)
    return total


@anyio
@pytest.mark.parametrize("attempt", range(4))
async def test_three_reapers_at_once_over_a_backlog_count_each_first_charge_once(
    storage: Any, tenant: Tenant, race: Race, attempt: int, tally: FakeTally
) -> None:
    """DESIGN.md: background jobs are safe to run concurrently on several machines; the tally
    hears of each first charge once, from the settlement that wrote it. Three reapers race
    over 40 idle sessions: the runs close 40 between them, each session has one charge entry,
    and what the tally heard adds up to the ledger's first charges."""
    sessions = await stale_kiosks(storage, tenant)

    runs = await race(*(lambda s: reap_at(s, 95),) * 3)

    assert sum(r.closed for r in runs) == CROWD, runs
    written = await first_charges_of(storage, tenant, sessions)
    assert written > 0
    assert tally.total == written, (tally.told, written)


@anyio
@pytest.mark.parametrize("attempt", range(2))
async def test_a_reaper_and_every_clients_exit_at_once_count_each_first_charge_once(
    storage: Any, tenant: Tenant, race: Race, attempt: int, tally: FakeTally
) -> None:
    """README: the client's own exit replaces the reaper's end once. A reaper and the clients'
    exits (at 20, each) race: whoever writes a session's first charge counts it (RecordExit's
    the exit or the reaper), the other counts
    nothing, and no adjustment is counted: the counts add up to the ledger's first charges."""
    sessions = await stale_kiosks(storage, tenant, 20)

    async def exits(s: Any) -> list[RecordedExit]:
        record_exit = wired(s, FakeClock(at(95))).use_cases().record_exit()
        return [await record_exit(RecordExitCommand(tenant.id, x.id, at=at(20))) for x in sessions]

    await race(lambda s: reap_at(s, 95), exits)
    await reap_at(storage, 100)  # settles what a lost claim left pending (counted below too)
    counted = tally.total
    await reap_at(storage, 101)

    assert tally.total == counted
    written = await first_charges_of(storage, tenant, sessions)
    await assert_ended(storage, tenant, sessions, SessionStatus.COMPLETED, 20)
    assert counted == written, tally.told


@anyio
@pytest.mark.parametrize("where", ["before-settle_many", "after-time_out_idle"])
async def test_a_clients_exit_inside_the_reapers_run_is_counted_by_whoever_charged_first(
    storage: Any, tenant: Tenant, race: Race, where: str, tally: FakeTally
) -> None:
    """Forced: the reaper closed the batch and stops (before charging it, or right after its
    timeouts); the client's exit (20) replaces the reaper's end and is handled whole; the
    reaper goes on. One first charge (60), counted once between the exit and the run."""
    (session,) = await stale_kiosks(storage, tenant, 1)
    reached, go = threading.Event(), threading.Event()
    port, method, how = {
        "before-settle_many": ("ledger", "settle_many", {}),
        "after-time_out_idle": ("sessions", "time_out_idle", {"before": False}),
    }[where]

    async def exits(s: Any) -> RecordedExit:
        command = RecordExitCommand(tenant.id, session.id, at=at(20))
        recorded: RecordedExit = (
            await wired(s, FakeClock(at(95))).use_cases().record_exit()(command)
        )
        return recorded

    await race(
        lambda s: reaping(s, 95, **paused(s, port, method, reached, go, **how)),
        after(reached, go, exits),
    )

    (written,) = [await first_charges_of(storage, tenant, [session])]
    assert written == 20 * KIOSK.credits_per_minute
    assert tally.told == [written]


# --- 2. LiveKit stays: who writes the first charge, and who counts it --------------------------


@anyio
async def test_a_join_delivered_after_its_room_finished_counts_the_charge_it_writes(
    storage: Any, tenant: Tenant, tally: FakeTally
) -> None:
    """README: "room_finished ends ... any stay of that room stored after it (its join
    delivered late ...)", charged like any exit. The late join's webhook stores the stay, ends
    it with its room (20) and writes its first charge (20): that webhook is the caller that
    wrote it, so the metric must count it; 39d6081: "ReceivedWebhook
    now carries the credits of the first charges its exits wrote". No later run counts it."""
    server = await a_server(storage, tenant)
    await deliver(storage, server.webhook("room_finished", stamped(ROOM_END)))

    await deliver(storage, server.joined("ana", stamped(0)))
    await reap_at(storage, 95)

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    assert (stay.ended_at, stay.exit_reason, credits) == (stamped(ROOM_END), ROOM_FINISHED, 20)
    assert tally.told == [first_charge(written)] == [20], kinds(written)


@anyio
async def test_a_cameras_unpublish_on_a_stay_the_reaper_closed_uncharged_counts_the_first_charge(
    storage: Any, tenant: Tenant, tally: FakeTally
) -> None:
    """The reaper closed Ana's stay at her last sign of life (her camera's publish, 1) and died
    before charging it. Her camera's track_unpublished (10) is evidence after the reaper's end:
    README, it moves the end to 10, the camera gets 9 minutes, and the stay is settled: its
    first charge (10 + 18 = 28) is written by that webhook. 843c6cc/39d6081: a first charge is
    counted by the caller that wrote it, once: what the tally hears over the webhook and the next
    runs' must be 28."""
    server = await a_server(storage, tenant)
    await deliver(storage, server.joined("ana", stamped(0)))
    await deliver(storage, published(server))
    (closed,) = await times_out_and_dies(storage, tenant)
    assert closed.ended_at == stamped(1)

    await deliver(storage, unpublish(server, "TR_ana", 10))
    await reap_at(storage, 96)
    await reap_at(storage, 97)

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    assert (stay.ended_at, stay.usage, credits) == (stamped(10), {"video.seconds": 540}, 28)
    assert tally.told == [first_charge(written)], kinds(written)


@anyio
async def test_a_cameras_unpublish_inside_the_reapers_run_counts_the_first_charge_once(
    storage: Any, race: Race, tally: FakeTally
) -> None:
    """Forced, the same without a crash: the reaper's timeouts closed Ana's stay at 1 (her
    tenant's stays idle out) and it stops before charging the batch; her camera's
    track_unpublished (10) is handled whole; the reaper goes on. The stay's first charge (28)
    must be counted once, by whichever of the two wrote it."""
    tenant, server = await idle_tenant(storage)
    await deliver(storage, server.joined("ana", stamped(0)))
    await deliver(storage, published(server))
    reached, go = threading.Event(), threading.Event()
    late = unpublish(server, "TR_ana", 10)

    await race(
        lambda s: reaping(s, 95, **paused(s, "ledger", "settle_many", reached, go)),
        after(reached, go, lambda s: deliver(s, late)),
    )

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    assert (stay.ended_at, credits) == (stamped(10), 28)
    assert tally.told == [first_charge(written)], kinds(written)


@anyio
async def test_her_left_replacing_an_uncharged_reapers_end_counts_the_first_charge_not_the_cameras(
    storage: Any, tenant: Tenant, tally: FakeTally
) -> None:
    """39d6081: "A left that replaces the reaper's guess of a stay the reaper closed but did
    not charge ... writes the stay's first charge", and the webhook counts it. The same with her
    camera on (published at 1, never unpublished): the `left` (5) ends the stay at 5 and her
    camera with it (4 minutes), 5 + 8 = 13, charged once. Whichever step of that webhook writes
    the first charge, the webhook wrote it: what the tally hears (with the next run's, which
    has nothing left to charge) must be the ledger's charge entry."""
    server = await a_server(storage, tenant)
    await deliver(storage, server.joined("ana", stamped(0)))
    await deliver(storage, published(server))
    await times_out_and_dies(storage, tenant)

    await deliver(storage, server.left("ana", stamped(0), stamped(5)))
    await reap_at(storage, 96)

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    assert (stay.status, stay.ended_at, credits) == (SessionStatus.COMPLETED, stamped(5), 13)
    assert tally.told == [first_charge(written)], kinds(written)


@anyio
@pytest.mark.parametrize("camera", [False, True], ids=["no-camera", "camera-on"])
async def test_her_left_inside_the_reapers_run_counts_the_first_charge_once(
    storage: Any, race: Race, camera: bool, tally: FakeTally
) -> None:
    """Forced, 39d6081's own case without a crash: the reaper's timeouts closed Ana's stay at
    her last sign of life (1) and the run stops before charging the batch; her `left` (5) is
    handled whole; the run goes on. README: her `left` replaces the reaper's end once; the
    stay is charged once (5, or 5 + 8 with her camera on since 1), and that first charge is
    counted once between the run and the webhook."""
    tenant, server = await idle_tenant(storage)
    await deliver(storage, server.joined("ana", stamped(0)))
    if camera:
        await deliver(storage, published(server))
    else:
        await deliver(storage, screen_share_audio(server, 1))
    reached, go = threading.Event(), threading.Event()
    left = server.left("ana", stamped(0), stamped(5))

    await race(
        lambda s: reaping(s, 95, **paused(s, "ledger", "settle_many", reached, go)),
        after(reached, go, lambda s: deliver(s, left)),
    )

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    assert (stay.status, stay.ended_at, credits) == (
        SessionStatus.COMPLETED,
        stamped(5),
        13 if camera else 5,
    )
    assert tally.told == [first_charge(written)], kinds(written)


@anyio
async def test_the_back_ends_exit_of_a_stay_with_its_camera_on_counts_the_first_charge_only(
    storage: Any, tenant: Tenant, tally: FakeTally
) -> None:
    """The product's back end exits Ana's open stay (RecordExit, at 5) while her camera is on
    (published at 1): README, "a stay that ends ends its open tracks". The exit closes and
    charges the stay; what the ledger shows as its first charge is what the tally hears (from
    the settlement that wrote it); an adjustment after it is not heard."""
    server = await a_server(storage, tenant)
    await deliver(storage, server.joined("ana", stamped(0)))
    await deliver(storage, published(server))
    command = RecordExitCommand(tenant.id, stay_of(server), at=stamped(5))

    exited = await wired(storage, FakeClock(at(90))).use_cases().record_exit()(command)

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    assert (stay.ended_at, stay.usage, credits) == (stamped(5), {"video.seconds": 240}, 13)
    assert exited.closed
    assert tally.told == [first_charge(written)], kinds(written)


# --- 3. 4c9f480: the reaper's timeouts in rooms that finished ----------------------------------


async def stored_after_the_sweep(
    storage: Any, race: Race, tenant: Tenant, server: LiveKitServer, camera: bool
) -> Reaped:
    """room_finished (20) came first. A reaper has swept and stops before its timeouts; Ana's
    join is handled meanwhile and dies before its look at the room (the stay stored, open);
    then (with `camera`) her camera's track_published (1) is recorded. The reaper's timeouts
    close the stay at 1; `timed_out` gives it the room's end. Returns that run."""
    await deliver(storage, server.webhook("room_finished", stamped(ROOM_END)))
    reached, go = threading.Event(), threading.Event()

    async def meanwhile(s: Any) -> None:
        with pytest.raises(ConnectionError):
            await deliver(s, server.joined("ana", stamped(0)), **dies_at_the_rooms_look(s))
        if camera:
            await deliver(s, published(server))

    reaped, _ = await race(
        lambda s: reaping(s, 95, **paused(s, "sessions", "time_out_idle", reached, go)),
        after(reached, go, meanwhile),
    )
    assert isinstance(reaped, Reaped)
    return reaped


@anyio
@pytest.mark.parametrize("camera", [False, True], ids=["no-camera", "camera-on"])
async def test_a_stay_timed_out_in_a_finished_room_ends_with_it_and_its_charge_is_counted_once(
    storage: Any, race: Race, camera: bool, tally: FakeTally
) -> None:
    """README: "should the handling of that stay's webhook stop halfway, the reaper's next run
    ends it with its room, even where its idle timeout closed the stay first". The run that
    timed the stay out ends it at 20 (with her camera, 19 minutes of it: 20 + 38), and counts
    its first charge once, as the ledger holds it; no later run counts anything."""
    tenant, server = await idle_tenant(storage)

    reaped = await stored_after_the_sweep(storage, race, tenant, server, camera)
    counted = list(tally.told)
    await reap_at(storage, 96)
    await reap_at(storage, 97)

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    assert (stay.ended_at, stay.exit_reason) == (stamped(ROOM_END), ROOM_FINISHED), stay
    assert credits == (ROOM_END + 2 * (ROOM_END - 1) if camera else ROOM_END)
    assert len([e for e in written if e.kind is EntryKind.CHARGE]) == 1, kinds(written)
    assert (reaped.closed, reaped.failures) == (1, []), reaped
    assert counted == tally.told == [first_charge(written)], kinds(written)


async def room_finished_around_the_run(
    storage: Any, race: Race, finished_at: float, inside: bool
) -> tuple[Tenant, LiveKitServer]:
    """Ana (an idle-rooms tenant) joined at 0 and was last seen at 80 (a screen-share audio
    track, which meters nothing); the reaper's run at 95 times her stay out at 80. Her room's
    room_finished, stamped `finished_at`, is handled after that run, or `inside` it (between
    its timeouts and its look at the finished rooms); then the reaper runs at 100."""
    tenant, server = await idle_tenant(storage)
    await deliver(storage, server.joined("ana", stamped(0)))
    await deliver(storage, screen_share_audio(server, 80))
    finished = server.webhook("room_finished", stamped(finished_at))
    if inside:
        reached, go = threading.Event(), threading.Event()
        await race(
            lambda s: reaping(
                s, 95, **paused(s, "sessions", "time_out_idle", reached, go, before=False)
            ),
            after(reached, go, lambda s: deliver(s, finished)),
        )
    else:
        await reap_at(storage, 95)
        await deliver(storage, finished)
    await reap_at(storage, 100)
    return tenant, server


@anyio
@pytest.mark.parametrize("order", ["reaper-then-room", "room-inside-the-reapers-run"])
async def test_a_stay_timed_out_while_its_room_still_ran_keeps_the_reapers_end(
    storage: Any, race: Race, order: str
) -> None:
    """4c9f480: "A stay timed out while its room still runs keeps the reaper's end, as
    room_finished leaves ended stays alone". Ana was last seen at 80 (a screen-share audio
    track, which meters nothing); the reaper's run at 95 times her stay out at 80; the room
    finishes at 96, after that. Whether its room_finished arrives after the run or while the
    run is between its timeouts and its look at the finished rooms, the stay keeps the
    reaper's end (80, timed_out) and is charged 80, once."""
    tenant, server = await room_finished_around_the_run(
        storage, race, 96, inside=order == "room-inside-the-reapers-run"
    )

    stay, credits, _ = await books_of(storage, tenant, stay_of(server))
    seen = (stay.status, stay.ended_at, stay.exit_reason, credits)
    assert seen == (SessionStatus.TIMED_OUT, stamped(80), None, 80), seen


@anyio
async def test_a_stay_of_a_room_name_used_again_keeps_the_reapers_end(
    storage: Any, tally: FakeTally
) -> None:
    """Room `bootcamp` (RM_bootcamp) finished at 20; the name is used again (RM_bootcamp_2),
    where Ben joins at 30 and is last seen at 45. The reaper's timeouts close Ben's stay at 45:
    his room (by its sid) never finished, so he keeps the reaper's end, charged 15, once, and
    the run counts 15."""
    tenant, old = await idle_tenant(storage)
    await deliver(storage, old.webhook("room_finished", stamped(ROOM_END)))
    new = LiveKitServer()
    new.room = {"sid": "RM_bootcamp_2", "name": "bootcamp"}
    await deliver(storage, new.joined("ben", stamped(30)))
    await deliver(storage, screen_share_audio(new, 45, "ben"))

    reaped = await reap_at(storage, 95)

    ben = await storage.sessions.get(tenant.id, stay_of(new, "ben"))
    written = await entries(storage, tenant, ben.id, "ben")
    assert (ben.status, ben.ended_at, ben.exit_reason) == (
        SessionStatus.TIMED_OUT,
        stamped(45),
        None,
    )
    assert ben.charge is not None and ben.charge.credits == 15
    assert (reaped.closed, tally.told, first_charge(written)) == (1, [15], 15)


@anyio
async def test_her_left_between_the_reapers_timeouts_and_its_look_keeps_where_she_left(
    storage: Any, race: Race, tally: FakeTally
) -> None:
    """Forced: Ana's stay is stored after the sweep's look in a room that finished at 20 (as
    above); the reaper's timeouts close it at 0 and the run stops before looking at the
    finished rooms; her `left` (5) replaces the reaper's end, whole. README: the participant's
    own `left` replaces a guess once, and a guess (the room's end) does not replace it: the
    stay ends at 5, charged 5 once, counted once between the run and the webhook."""
    tenant, server = await idle_tenant(storage)
    await deliver(storage, server.webhook("room_finished", stamped(ROOM_END)))
    before, go_on = threading.Event(), threading.Event()
    timed, go = threading.Event(), threading.Event()
    left = server.left("ana", stamped(0), stamped(5))

    async def reaper(s: Any) -> Reaped:
        sessions = TwoStops(s.sessions, "time_out_idle", (before, go_on), (timed, go))
        return await reaping(s, 95, sessions=sessions)

    async def meanwhile(s: Any) -> Any:
        await wait_for(before)
        try:
            with pytest.raises(ConnectionError):
                await deliver(s, server.joined("ana", stamped(0)), **dies_at_the_rooms_look(s))
        finally:
            go_on.set()
        await wait_for(timed)
        try:
            return await deliver(s, left)
        finally:
            go.set()

    await race(reaper, meanwhile)
    await reap_at(storage, 96)

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    seen = (stay.status, stay.ended_at, stay.exit_reason, credits)
    assert seen == (SessionStatus.COMPLETED, stamped(5), None, 5), seen
    assert tally.told == [first_charge(written)], kinds(written)


class TwoStops:
    """A racer's port whose first call of `method` stops before it (first pair: tells, waits)
    and after it (second pair)."""

    def __init__(
        self,
        port: Any,
        method: str,
        before: tuple[threading.Event, threading.Event],
        after_: tuple[threading.Event, threading.Event],
    ) -> None:
        self._port, self._method = port, method
        self._before, self._after = before, after_
        self._done = False

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._port, name)
        if name != self._method:
            return found

        async def stopped(*args: Any, **kwargs: Any) -> Any:
            if self._done:
                return await found(*args, **kwargs)
            self._done = True
            self._before[0].set()
            await wait_for(self._before[1])
            result = await found(*args, **kwargs)
            self._after[0].set()
            await wait_for(self._after[1])
            return result

        return stopped


@anyio
async def test_two_reapers_one_timing_out_a_stay_in_a_finished_room_count_its_charge_once(
    storage: Any, race: Race, tally: FakeTally
) -> None:
    """Forced: reaper A swept; meanwhile Ana's stay is stored by its first webhook (a
    screen-share audio track at 4) which dies before its look at the finished room (20); A's
    timeouts close the stay at 4 and A stops; reaper B runs whole (its pending loop charges
    the reaper's end, 4, and counts it); A goes on and gives the stay its room's end (20: an
    adjustment of 16). One end, one first charge, counted once between A and B (DESIGN.md:
    background jobs are safe to run concurrently on several machines)."""
    tenant, server = await idle_tenant(storage)
    await deliver(storage, server.webhook("room_finished", stamped(ROOM_END)))
    before, go_on = threading.Event(), threading.Event()
    timed, go = threading.Event(), threading.Event()

    async def reaper_a(s: Any) -> Reaped:
        sessions = TwoStops(s.sessions, "time_out_idle", (before, go_on), (timed, go))
        return await reaping(s, 95, sessions=sessions)

    async def reaper_b(s: Any) -> Reaped:
        await wait_for(before)
        try:
            with pytest.raises(ConnectionError):
                await deliver(s, screen_share_audio(server, 4), **dies_at_the_rooms_look(s))
        finally:
            go_on.set()
        await wait_for(timed)
        try:
            return await reaping(s, 95)
        finally:
            go.set()

    await race(reaper_a, reaper_b)

    stay, credits, written = await books_of(storage, tenant, stay_of(server))
    seen = (stay.ended_at, stay.exit_reason, credits)
    assert seen == (stamped(ROOM_END), ROOM_FINISHED, ROOM_END), seen
    assert tally.told == [first_charge(written)], kinds(written)


@anyio
async def test_a_refused_room_end_at_the_reapers_timeouts_crashes_nothing_and_counts_once(
    storage: Any, tally: FakeTally
) -> None:
    """LiveKit's clock runs ahead: room RM_ahead is remembered finished at 110, beyond the 5
    minutes of skew ahead of the reaper (95), and Ana's stay in it has idled (last seen 2).
    The room's end is refused (InvalidInput: reported in Reaped.failures), never raised: the
    run closes her stay at its guess, charges it (2) once and counts it once; Ben's stay in
    another room the same run times out normally."""
    tenant, _ = await idle_tenant(storage)
    ahead = LiveKitServer(room="ahead")
    await deliver(storage, ahead.joined("ana", stamped(0)))
    await deliver(storage, screen_share_audio(ahead, 2))
    await storage.finished_rooms.finish(tenant.id, ahead.room["sid"], stamped(110))
    other = LiveKitServer(room="other")
    await deliver(storage, other.joined("ben", stamped(0)))
    await deliver(storage, screen_share_audio(other, 3, "ben"))

    reaped = await reap_at(storage, 95)

    ana = await storage.sessions.get(tenant.id, stay_of(ahead))
    ben = await storage.sessions.get(tenant.id, stay_of(other, "ben"))
    assert reaped.failures and all(f.tenant_name == tenant.name for f in reaped.failures)
    assert (ana.status, ana.ended_at) == (SessionStatus.TIMED_OUT, stamped(2)), ana
    assert (ben.status, ben.ended_at) == (SessionStatus.TIMED_OUT, stamped(3)), ben
    charged = first_charge(await entries(storage, tenant, ana.id, "ana")) + first_charge(
        await entries(storage, tenant, ben.id, "ben")
    )
    assert (reaped.closed, tally.total, charged) == (2, 5, 5), reaped


@anyio
async def test_a_stay_timed_out_before_its_room_finished_by_livekits_clock_keeps_the_reapers_end(
    storage: Any,
) -> None:
    """The same, and then the reaper's clock passes 105. The sweep of the run at 95 read Ana's
    stay open (its room's end, 110 by LiveKit's clock, refused for the skew), then the timeouts
    closed it at 2: a stay the sweep read open keeps the reaper's end
    (EndStaysInFinishedRooms.timed_out), as room_finished leaves ended stays alone; later
    sweeps read open stays only. So later runs change nothing: 2, timed out, charged 2 once."""
    tenant, _ = await idle_tenant(storage)
    ahead = LiveKitServer(room="ahead")
    await deliver(storage, ahead.joined("ana", stamped(0)))
    await deliver(storage, screen_share_audio(ahead, 2))
    await storage.finished_rooms.finish(tenant.id, ahead.room["sid"], stamped(110))
    await reap_at(storage, 95)

    await reap_at(storage, 106)
    await reap_at(storage, 107)

    stay, credits, _ = await books_of(storage, tenant, stay_of(ahead))
    seen = (stay.status, stay.ended_at, stay.exit_reason, credits)
    assert seen == (SessionStatus.TIMED_OUT, stamped(2), None, 2), seen


# --- 4. Through the HTTP app: what /metrics adds up ------------------------------------------

on_two_stores = pytest.mark.parametrize("storage_url", ["memory", "sqlite"], indirect=True)


def _iso(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def _ago(minutes: float) -> str:
    return _iso(datetime.now(UTC) - timedelta(minutes=minutes))


def _metric(api: Api) -> float:
    answer = api.client.get("/metrics")
    assert answer.status_code == 200, answer.text
    return value(samples_of(answer.text), "sessionmeter_credits_charged_total")


def _first_charges_in_ledger(api: Api, subject: str, session_id: str) -> int:
    ledger = api.client.get(f"/v1/accounts/{subject}/credits/ledger", headers=api.admin).json()
    mine = [e for e in ledger["items"] if e["session_id"] == session_id]
    return -sum(int(e["amount"]) for e in mine if e["kind"] == "charge")


def _kiosk_timed_out_uncharged(api: Api) -> dict[str, Any]:
    """A kiosk session (60 credits a minute) started 30 minutes ago and silent since; the
    reaper's timeouts close it at its start and its process dies before charging it."""
    rate = {"credits_per_minute": 60}
    assert api.client.put("/v1/rates/kiosk", json=rate, headers=api.admin).status_code == 200
    session = api.start(kind="kiosk", resource_id="booth-1", started_at=_ago(30))

    async def times_out() -> list[Session]:
        tenant = await api.container.storage.tenants().get_by_name("acme")
        now = datetime.now(UTC)
        closed: list[Session] = await api.container.storage.sessions().time_out_idle(
            tenant.id,
            Staleness(default=now - timedelta(seconds=10)),
            500,
            frozenset({"kiosk"}),
            now,
            WINDOW,
        )
        return closed

    (closed,) = api.run(times_out)
    assert closed.status is SessionStatus.TIMED_OUT
    return session


def _reap(api: Api) -> None:
    api.run(api.container.jobs.reap_stale_sessions(), ReapStaleSessionsCommand())


@on_two_stores
def test_http_a_clients_exit_replacing_an_uncharged_reapers_end_counts_its_first_charge(
    api: Api,
) -> None:
    """README: the client's own exit replaces the reaper's end once; 843c6cc: a first charge
    is counted by the caller that wrote it. Here the exit (10 minutes: 600 credits) writes the
    session's first charge, so `sessionmeter_credits_charged_total` (with what the reaper's
    next run counts) must be 600: the ledger's charge entry."""
    session = _kiosk_timed_out_uncharged(api)
    path = f"/v1/sessions/{session['id']}"

    exited = api.client.post(f"{path}/exit", json={"at": _ago(20)}, headers=api.app)
    assert exited.status_code == 200, exited.text
    _reap(api)  # the app's own container: it tells the same metrics

    written = _first_charges_in_ledger(api, "user-1", session["id"])
    assert written == exited.json()["charge"]["credits"] > 0
    assert _metric(api) == written


@on_two_stores
def test_http_events_moving_an_uncharged_reapers_end_count_the_first_charge_they_settle(
    api: Api,
) -> None:
    """README: "an event dated after `ended_at` moves the end to that event", and "Charges
    follow corrections, once". The kiosk's event 10 minutes in moves the reaper's end; the
    batch settles the session: its first charge (600) is written by the events batch. DESIGN
    (Metrics): credits charged are counted: the metric plus the reaper's next run must add up
    to the ledger's charge entry."""
    session = _kiosk_timed_out_uncharged(api)
    event = {"session_id": session["id"], "sequence_no": 1, "type": "tap", "at": _ago(20)}

    sent = api.client.post("/v1/events/batch", json={"events": [event]}, headers=api.app)
    assert sent.status_code in (200, 207), sent.text
    assert sent.json()["inserted"] == 1, sent.text
    _reap(api)  # the app's own container: it tells the same metrics

    written = _first_charges_in_ledger(api, "user-1", session["id"])
    assert written > 0
    assert _metric(api) == written
