"""A stay's end and its tracks' ends when its enders race (a `left`, `room_finished`,
reconciliation, late signs of life), on every store: forced interleavings from a hostile review
of the provisional track ends, guessed stay ends and finished rooms (2026-12-03).

The first section's tests each failed on every store before the fix that followed the review;
their docstrings say what went wrong ("Wrong") and what holds ("Right"). The second section's
attacks held from the start."""

import threading
from typing import Any

import pytest

from domain.livekit import session_id_of
from domain.session import ChargeState, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import add_tenant, at
from tests.contract.races import Pause, Race, after, wait_for
from tests.contract.test_livekit_stays import (
    RIGHT,
    URL,
    charged_once,
    deliver,
    delivers,
    gone,
    joined_with_camera,
    ledger_total,
    livekit_server_of,
    published,
    reconcile,
    room_finished,
    settled_stay,
    stamped,
    unpublished,
)
from tests.fakes import FakeRoomService
from tests.livekit_server import LiveKitServer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server(storage: Any, tenant: Tenant) -> LiveKitServer:
    return await livekit_server_of(storage, tenant)


class PauseNth:
    """A racer's port whose `nth` call of `method` (1-based) first lets another racer go
    (`reached`) and waits until it is done (`go`)."""

    def __init__(
        self, port: Any, method: str, nth: int, reached: threading.Event, go: threading.Event
    ) -> None:
        self._port, self._method, self._nth = port, method, nth
        self._reached, self._go = reached, go
        self._calls = 0

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._port, name)
        if name != self._method:
            return found

        async def paused(*args: Any, **kwargs: Any) -> Any:
            self._calls += 1
            if self._calls == self._nth and not self._reached.is_set():
                self._reached.set()
                await wait_for(self._go)
            return await found(*args, **kwargs)

        return paused


def present(server: LiveKitServer, *who: str) -> FakeRoomService:
    """LiveKit's answer: these participants are in the room."""
    rooms = FakeRoomService()
    rooms.rooms[URL] = {server.room["name"]: {f"PA_{w}" for w in who}}
    return rooms


def microphone(server: LiveKitServer, event: str, who: str, when: Any) -> Any:
    return server.track(event, who, at(0), f"MIC_{who}", "MICROPHONE", when)


# --- Found wrong by the review, fixed ------------------------------------------------------------


async def test_a_guessing_ender_that_lost_to_the_left_re_ends_the_camera_at_its_stale_end(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    """room_finished (at 60) closes the stay, ending its camera at 60, and is charged; before
    its correction pass (the second tracks_ending_with_stay) the participant's `left` (at 11)
    runs from start to end: it replaces the guess, ends the camera at 11 and settles 31.
    room_finished then resumes with `exited.session.ended_at` = 60, the end as ITS close left it,
    sees the camera at 11 != 60 and re-ends it at 60 (an `end_from_stay` end is replaced by any
    other). Wrong: the stay ends at 11 with 59 minutes of camera, charged 11 + 118. Right: the
    camera ends with the end the stay kept (11): 10 minutes, 31 credits."""
    await joined_with_camera(storage, server)
    reached, go = threading.Event(), threading.Event()

    async def finish(s: Any) -> Any:
        second_look = PauseNth(s.tracks, "tracks_ending_with_stay", 2, reached, go)
        return await deliver(s, room_finished(server, at(60)), tracks=second_look)

    await race(finish, after(reached, go, delivers(server.left("ana", at(0), at(11)))))

    assert await charged_once(storage, tenant, server, "ana") == RIGHT


async def test_reconciliation_that_lost_to_the_left_re_ends_the_camera_at_its_stale_end(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    """The same race with reconciliation (ends at the last sign of life, 1): it closes the stay,
    then, before its correction pass, the `left` (at 11) corrects the stay and the camera; the
    correction pass then re-ends the camera at reconciliation's own end (1). Wrong: 11 minutes
    of stay with no camera. Right: 10 minutes of camera."""
    await joined_with_camera(storage, server)
    reached, go = threading.Event(), threading.Event()

    async def reconciles(s: Any) -> Any:
        second_look = PauseNth(s.tracks, "tracks_ending_with_stay", 2, reached, go)
        return await reconcile(s, tenant, gone(server), tracks=second_look)

    await race(reconciles, after(reached, go, delivers(server.left("ana", at(0), at(11)))))

    assert await charged_once(storage, tenant, server, "ana") == RIGHT


async def test_reconciliation_finding_her_present_moves_the_rooms_end_to_now(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    """Reconciliation reads ana's stay open and asks the server, which says she is in the room;
    meanwhile room_finished (at 60) ends the stay, a guess since dc695e3. Reconciliation then
    takes its stale "present" as a sign of life dated now (90): a provisional end earlier than
    that moves to it. Wrong: the stay of a room that finished at 60 ends at 90 (and charged so),
    while its camera, ended with the room, stays at 60. Right: a room's end is not moved by a
    presence answer older than it (the stay ends at 60, with 59 minutes of camera)."""
    await joined_with_camera(storage, server)
    reached, go = threading.Event(), threading.Event()
    answers_late = Pause(present(server, "ana"), "participants", reached, go, before=False)

    await race(
        lambda s: reconcile(s, tenant, answers_late),
        after(reached, go, delivers(room_finished(server, at(60)))),
    )

    stay = await settled_stay(storage, tenant, server, "ana")
    assert (stay.ended_at, stay.exit_reason) == (stamped(60), "room_finished")
    assert stay.usage.get("video.seconds") == 59 * 60


async def test_a_sign_of_life_moving_a_guessed_end_leaves_the_other_tracks_at_the_old_guess(
    storage: Any, tenant: Tenant, server: LiveKitServer
) -> None:
    """Reconciliation ends ana's stay at her last sign of life (1), and her camera and
    microphone with it. Then the camera's own track_unpublished (at 20), delivered late, is a
    sign of life: the guessed end moves to 20 (Session.seen), the camera takes its own end, but
    the microphone, ended with the stay, keeps the old guess (1): `seen` moves the stay's end
    and nothing re-ends its tracks (only LiveKitStays.end does). Wrong: a 20-minute stay with
    0 s of microphone. Right: the microphone, never unpublished, ends with the stay (19 min)."""
    await deliver(storage, server.joined("ana", at(0)))
    await deliver(storage, published(server, "ana"))
    await deliver(storage, microphone(server, "track_published", "ana", at(1)))
    await reconcile(storage, tenant, gone(server))
    await deliver(storage, unpublished(server, "ana", at(20)))

    stay = await settled_stay(storage, tenant, server, "ana")
    assert stay.ended_at == stamped(20)
    assert stay.usage.get("video.seconds") == 19 * 60
    assert stay.usage.get("audio.seconds") == 19 * 60, stay.usage


async def test_a_left_first_in_a_finished_room_keeps_the_rooms_end_past_the_window(
    storage: Any,
) -> None:
    """A tenant with a 10-minute late-data window. The room finished at 60; ana's `left` (at
    11) is the first webhook of her stay to arrive, at 90 (LiveKit retried it). `_joined` stores
    the stay, finds the room finished and ends it at 60 (`room_finished`, a guess); the `left`
    that follows cannot replace it, 30 minutes after that end (outside the window): a replay.
    Before d8293cf this webhook alone ended the stay at 11. Wrong: 60 minutes charged for 11.
    Right: the webhook that is the participant's own exit ends the stay, not the room's guess
    (_joined should not end with the room a stay it opens for an exit)."""
    tenant = await add_tenant(storage, "short", late_data_window_seconds=600)
    server = await livekit_server_of(storage, tenant)
    await deliver(storage, room_finished(server, at(60)))

    await deliver(storage, server.left("ana", at(0), at(11)))

    stay = await settled_stay(storage, tenant, server, "ana")
    assert (stay.ended_at, stay.exit_reason) == (stamped(11), None)
    assert stay.charge is not None and stay.charge.credits == 11


async def test_reconciliation_ending_a_stay_seen_while_it_asked_ends_it_when_last_seen(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    """Reconciliation reads ana's stay (last seen at 1, her camera's start) to end it there;
    before it ends it, her camera's own track_unpublished (at 20) arrives, a sign of life of the
    open stay. Found live (`reconciled_stay`, under load). Wrong: the stay ends at 1, last seen
    at 20, after its end. Right: a guessed end is the last sign of life as stored when the stay
    closes (20), as the reaper's is: 19 minutes of camera."""
    await joined_with_camera(storage, server)
    reached, go = threading.Event(), threading.Event()

    async def reconciles(s: Any) -> Any:
        read = Pause(s.sessions, "get", reached, go, before=False)
        return await reconcile(s, tenant, gone(server), sessions=read)

    await race(reconciles, after(reached, go, delivers(unpublished(server, "ana", at(20)))))

    stay = await settled_stay(storage, tenant, server, "ana")
    assert (stay.ended_at, stay.last_seen_at) == (stamped(20), stamped(20))
    assert (stay.exit_reason, stay.usage.get("video.seconds")) == ("reconciled", 19 * 60)


# --- Attacks that held ---------------------------------------------------------------------------


async def test_held_the_left_paused_before_its_exit_while_the_room_finishes(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    """The left ends the camera at 11 (first pass) and stops before its exit; room_finished (60)
    closes the stay and, in its correction pass, re-ends the camera at 60; the left then
    corrects the stay and the camera to 11."""
    await joined_with_camera(storage, server)
    reached, go = threading.Event(), threading.Event()

    async def leave(s: Any) -> Any:
        stops = Pause(s.sessions, "close", reached, go)
        return await deliver(s, server.left("ana", at(0), at(11)), sessions=stops)

    await race(leave, after(reached, go, delivers(room_finished(server, at(60)))))

    assert await charged_once(storage, tenant, server, "ana") == RIGHT


async def test_held_the_tracks_own_unpublish_after_a_stale_ender_read_the_tracks(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    """room_finished reads the camera as ending with the stay (second look) and stops; the
    camera's own track_unpublished (at 5) lands; room_finished's re-end does not replace
    LiveKit's own end (end_from_stay loses to it)."""
    await joined_with_camera(storage, server)
    reached, go = threading.Event(), threading.Event()

    async def finish(s: Any) -> Any:
        looked = Pause(s.tracks, "record", reached, go)
        return await deliver(s, room_finished(server, at(60)), tracks=looked)

    await race(finish, after(reached, go, delivers(unpublished(server, "ana", at(5)))))

    stay = await settled_stay(storage, tenant, server, "ana")
    assert stay.usage.get("video.seconds") == 4 * 60
    assert stay.charge_state is ChargeState.CHARGED
    assert await ledger_total(storage, tenant, "ana", stay) == -(60 + 4 * 2)


async def test_held_a_negative_correction_numbers_its_video_end_after_the_others(
    storage: Any, tenant: Tenant, server: LiveKitServer
) -> None:
    """room_finished ends the camera at 60, the left corrects it to 11 (-49 minutes): usage
    exact, events numbered 1..n without gaps, event_count = n, and the ledger sums to the
    price."""
    await joined_with_camera(storage, server)
    await deliver(storage, room_finished(server, at(60)))
    await deliver(storage, server.left("ana", at(0), at(11)))

    assert await charged_once(storage, tenant, server, "ana") == RIGHT
    stay = await settled_stay(storage, tenant, server, "ana")
    events = await storage.events.find(tenant.id, stay.id, 100)
    assert [e.sequence_no for e in events] == list(range(1, len(events) + 1))
    assert stay.event_count == stay.max_sequence_no == len(events)
    assert [(e.type, e.at) for e in events if e.type == "video_end"] == [
        ("video_end", stamped(60)),
        ("video_end", stamped(11)),
    ]


async def test_held_a_left_then_a_late_room_finished_and_reconciliation(
    storage: Any, tenant: Tenant, server: LiveKitServer
) -> None:
    """A final end is not moved by a later guess: room_finished and reconciliation after the
    left change nothing."""
    await joined_with_camera(storage, server)
    await deliver(storage, server.left("ana", at(0), at(11)))
    await deliver(storage, room_finished(server, at(60)))
    await reconcile(storage, tenant, present(server, "ana"))

    assert await charged_once(storage, tenant, server, "ana") == RIGHT
    stay = await storage.sessions.get(tenant.id, session_id_of(server.room["sid"], "PA_ana"))
    assert stay is not None and stay.status is SessionStatus.COMPLETED
