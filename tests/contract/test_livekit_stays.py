"""A LiveKit stay's webhooks handled at the same time by separate processes, with each other,
with reconciliation and with the reaper, on every store: each stay closed and charged once, its
tracks counted once and none left open."""

import threading
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from dependency_injector import providers

from application.livekit.receive_livekit_webhook import (
    ReceivedWebhook,
    ReceiveLiveKitWebhookCommand,
)
from application.livekit.reconcile_livekit import Reconciled, ReconcileLiveKitCommand
from application.sessions.reap_stale_sessions import ReapStaleSessionsCommand
from domain.credits import MeterRate, Rate
from domain.livekit import LiveKitAccount, session_id_of
from domain.session import ChargeState, Session, SessionStatus
from domain.tenants import Tenant
from tests.contract.builders import at, wired
from tests.contract.races import Call, Pause, Race, after
from tests.fakes import FakeClock, FakeRoomService
from tests.livekit_server import LiveKitServer

pytestmark = pytest.mark.anyio

Webhook = tuple[str, dict[str, str]]
# A credit a minute of the stay, two a minute of camera: a stay of 11 minutes with 10 of camera
# costs 31.
RATE = Rate("livekit", 1, meter_rates={"video.seconds": MeterRate(Decimal(60), 2)})
JOINED, PUBLISHED, LEFT = at(0), at(1), at(11)
PRICE = 11 * 1 + 10 * 2
NOW = at(90)
URL = "http://livekit.test"  # the account's server: its stays may be reconciled and time out


def stamped(minutes: float) -> datetime:
    """at(minutes) as LiveKit stamps it: whole seconds (T0's milliseconds go)."""
    return at(minutes).replace(microsecond=0)


@pytest.fixture
async def server(storage: Any, tenant: Tenant) -> LiveKitServer:
    return await livekit_server_of(storage, tenant)


async def livekit_server_of(storage: Any, tenant: Tenant) -> LiveKitServer:
    """A LiveKit server of the tenant's (its account has a URL), and a rate for its stays."""
    server = LiveKitServer()
    await storage.livekit_accounts.add(LiveKitAccount(server.key, tenant.id, server.secret, URL))
    await storage.rates.put(tenant.id, RATE)
    return server


async def deliver(storage: Any, webhook: Webhook, **ports: Any) -> ReceivedWebhook:
    body, headers = webhook
    receive = wired(storage, FakeClock(NOW), **ports).use_cases().receive_livekit_webhook()
    return await receive(ReceiveLiveKitWebhookCommand(body, headers["Authorization"]))


def delivers(webhook: Webhook) -> Call:
    return lambda s: deliver(s, webhook)


async def reconcile(storage: Any, tenant: Tenant, rooms: Any, **ports: Any) -> Reconciled:
    container = wired(storage, FakeClock(NOW), **ports)
    container.outside.livekit_rooms.override(providers.Object(rooms))
    return await container.jobs().reconcile_livekit()(ReconcileLiveKitCommand(tenant.name))


def gone(server: LiveKitServer) -> FakeRoomService:
    """LiveKit's answer: nobody is in the room any more."""
    rooms = FakeRoomService()
    rooms.rooms[URL] = {server.room["name"]: set()}
    return rooms


def published(server: LiveKitServer, who: str) -> Webhook:
    return server.track("track_published", who, JOINED, f"TR_{who}", "CAMERA", PUBLISHED)


def unpublished(server: LiveKitServer, who: str, when: datetime) -> Webhook:
    return server.track("track_unpublished", who, JOINED, f"TR_{who}", "CAMERA", when)


def room_finished(server: LiveKitServer, when: datetime) -> Webhook:
    return server.webhook("room_finished", when)


async def joined(storage: Any, server: LiveKitServer, count: int) -> list[str]:
    """`count` participants who joined the room at JOINED."""
    people = [f"p{n}" for n in range(count)]
    for who in people:
        await deliver(storage, server.joined(who, JOINED))
    return people


async def joined_with_camera(storage: Any, server: LiveKitServer, who: str = "ana") -> None:
    await deliver(storage, server.joined(who, JOINED))
    await deliver(storage, published(server, who))


async def settled_stay(storage: Any, tenant: Tenant, server: LiveKitServer, who: str) -> Session:
    """The stay once any settlement a correction overtook is finished (as the reaper does)."""
    for pending in await storage.sessions.pending_charges(tenant.id, 100):
        await wired(storage, FakeClock(at(91))).use_cases().deduct_credits()(pending)
    stay: Session | None = await storage.sessions.get(
        tenant.id, session_id_of(server.room["sid"], f"PA_{who}")
    )
    assert stay is not None
    return stay


async def ledger_total(storage: Any, tenant: Tenant, who: str, stay: Session) -> int:
    entries = await storage.ledger.entries(tenant.id, who, limit=100)
    return int(sum(e.amount for e in entries if e.session_id == stay.id))


async def charged_once(storage: Any, tenant: Tenant, server: LiveKitServer, who: str) -> Any:
    """What a stay of 11 minutes with 10 of camera must come to: its camera seconds, its open
    tracks, its charge and what the ledger holds for it."""
    stay = await settled_stay(storage, tenant, server, who)
    return (
        stay.ended_at,
        stay.usage.get("video.seconds"),
        [
            t
            for t in await storage.tracks.tracks_ending_with_stay(tenant.id, stay.id)
            if not t.unpublished_at
        ],
        stay.charge_state,
        stay.charge.credits if stay.charge else None,
        await ledger_total(storage, tenant, who, stay),
    )


RIGHT: tuple[object, ...] = (stamped(11), 600, [], ChargeState.CHARGED, PRICE, -PRICE)


async def test_a_track_published_between_a_lefts_look_at_the_tracks_and_its_exit_ends_with_it(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    """The left looks for open tracks (none yet), then the track_published is handled from
    start to end, then the left closes the stay: the camera still ends with it."""
    await deliver(storage, server.joined("ana", JOINED))
    reached, go = threading.Event(), threading.Event()

    async def leave(s: Any) -> Any:
        looks = Pause(s.tracks, "tracks_ending_with_stay", reached, go, before=False)
        return await deliver(s, server.left("ana", JOINED, LEFT), tracks=looks)

    await race(leave, after(reached, go, delivers(published(server, "ana"))))

    assert await charged_once(storage, tenant, server, "ana") == RIGHT


async def test_stays_whose_track_is_published_as_they_end_are_each_charged_for_it_once(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    people = await joined(storage, server, 8)
    webhooks = [
        w for who in people for w in (published(server, who), server.left(who, JOINED, LEFT))
    ]

    await race(*(delivers(w) for w in webhooks))

    for who in people:
        assert await charged_once(storage, tenant, server, who) == RIGHT, who


async def test_a_left_delivered_four_times_at_once_closes_and_charges_the_stay_once(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    await joined_with_camera(storage, server)

    received = await race(*[delivers(server.left("ana", JOINED, LEFT))] * 4)

    assert sorted(r.redelivered for r in received) == [False, True, True, True]
    assert sum(len(r.ended) for r in received) == 1
    assert await charged_once(storage, tenant, server, "ana") == RIGHT


async def test_a_published_and_a_left_each_delivered_twice_at_once_count_the_camera_once(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    await deliver(storage, server.joined("ana", JOINED))
    publish, left = published(server, "ana"), server.left("ana", JOINED, LEFT)

    await race(*(delivers(w) for w in (publish, publish, left, left)))

    assert await charged_once(storage, tenant, server, "ana") == RIGHT


async def test_a_room_finishing_as_its_cameras_are_published_ends_every_stay_and_track(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    people = await joined(storage, server, 6)
    webhooks = [published(server, who) for who in people] + [room_finished(server, LEFT)]

    await race(*(delivers(w) for w in webhooks))

    for who in people:
        assert await charged_once(storage, tenant, server, who) == RIGHT, who


async def test_the_reaper_racing_published_and_left_webhooks_leaves_each_stay_completed_once(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    """Stays idle since their join are reaped while their camera's track_published and their
    left arrive: the left's end replaces the reaper's guess."""
    people = await joined(storage, server, 5)

    async def reap(s: Any) -> Any:
        jobs = wired(s, FakeClock(at(20))).jobs()
        return await jobs.reap_stale_sessions()(ReapStaleSessionsCommand(tenant.name))

    calls = [
        delivers(w)
        for who in people
        for w in (published(server, who), server.left(who, JOINED, LEFT))
    ]
    calls.insert(3, reap)

    await race(*calls)

    for who in people:
        stay = await settled_stay(storage, tenant, server, who)
        assert stay.status is SessionStatus.COMPLETED, who
        assert await charged_once(storage, tenant, server, who) == RIGHT, who


async def test_reconciliation_ends_a_stay_at_its_last_sign_of_life_when_it_ends_it(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    """Reconciliation reads the open stays (ana last seen at 1) and asks the LiveKit server;
    meanwhile the camera's track_unpublished (at 20) is a sign of life. The server says ana is
    gone: she left when last seen, at 20."""
    await joined_with_camera(storage, server)
    reached, go = threading.Event(), threading.Event()
    answers_late = Pause(gone(server), "participants", reached, go)

    await race(
        lambda s: reconcile(s, tenant, answers_late),
        after(reached, go, delivers(unpublished(server, "ana", at(20)))),
    )

    stay = await settled_stay(storage, tenant, server, "ana")
    assert (stay.status, stay.ended_at) == (SessionStatus.COMPLETED, stamped(20))
    assert stay.usage.get("video.seconds") == 19 * 60


async def test_a_room_finishing_while_a_left_closes_the_stay_counts_its_camera_to_the_left(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    """room_finished (at 60) ends the open camera at 60 and stops before its exit; the left (at
    11) closes the stay. Observed: 11 minutes of stay, 59 of camera."""
    await joined_with_camera(storage, server)
    reached, go = threading.Event(), threading.Event()

    async def finish(s: Any) -> Any:
        stops = Pause(s.sessions, "close", reached, go)
        return await deliver(s, room_finished(server, at(60)), sessions=stops)

    await race(finish, after(reached, go, delivers(server.left("ana", JOINED, LEFT))))

    assert await charged_once(storage, tenant, server, "ana") == RIGHT


async def test_reconciliation_ending_a_stay_as_its_left_arrives_counts_the_camera_to_the_left(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    """Reconciliation ends the camera at the last sign of life (1) and stops before its exit;
    the left (at 11) closes the stay. Observed: 11 minutes of stay, no camera."""
    await joined_with_camera(storage, server)
    reached, go = threading.Event(), threading.Event()

    async def reconciles(s: Any) -> Any:
        stops = Pause(s.sessions, "close", reached, go)
        return await reconcile(s, tenant, gone(server), sessions=stops)

    await race(reconciles, after(reached, go, delivers(server.left("ana", JOINED, LEFT))))

    assert await charged_once(storage, tenant, server, "ana") == RIGHT


async def test_a_tracks_own_unpublish_beats_the_end_its_stays_left_gives_it(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    """The camera's track_unpublished (at 5) stops before recording the track; the left (at 11)
    ends the camera at 11, and the real end is dropped as a second report. Observed: 10
    minutes of camera for 4."""
    await joined_with_camera(storage, server)
    reached, go = threading.Event(), threading.Event()

    async def unpublishes(s: Any) -> Any:
        stops = Pause(s.tracks, "record", reached, go)
        return await deliver(s, unpublished(server, "ana", at(5)), tracks=stops)

    await race(unpublishes, after(reached, go, delivers(server.left("ana", JOINED, LEFT))))

    stay = await settled_stay(storage, tenant, server, "ana")
    assert stay.usage.get("video.seconds") == 4 * 60, stay.usage
    assert await ledger_total(storage, tenant, "ana", stay) == -(11 + 4 * 2)


async def test_a_stay_joined_while_its_room_finishes_is_ended_with_the_room(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    reached, go = threading.Event(), threading.Event()

    async def finish(s: Any) -> Any:
        looked = Pause(s.sessions, "find", reached, go, before=False)
        return await deliver(s, room_finished(server, at(60)), sessions=looked)

    await race(finish, after(reached, go, delivers(server.joined("ana", JOINED))))

    stay = await settled_stay(storage, tenant, server, "ana")
    assert (stay.status, stay.ended_at, stay.exit_reason) == ENDED_WITH_THE_ROOM


ENDED_WITH_THE_ROOM = (SessionStatus.COMPLETED, stamped(60), "room_finished")


async def test_a_join_delivered_after_its_room_finished_is_ended_with_the_room(
    storage: Any, tenant: Tenant, server: LiveKitServer
) -> None:
    await deliver(storage, room_finished(server, at(60)))
    await deliver(storage, server.joined("ana", JOINED))

    stay = await settled_stay(storage, tenant, server, "ana")
    assert (stay.status, stay.ended_at, stay.exit_reason) == ENDED_WITH_THE_ROOM


async def test_a_stays_webhooks_delivered_after_its_room_finished_end_it_when_she_left(
    storage: Any, tenant: Tenant, server: LiveKitServer
) -> None:
    """The room's end holds the stay's place until her own `left` says when she left."""
    await deliver(storage, room_finished(server, at(60)))
    await joined_with_camera(storage, server)
    await deliver(storage, server.left("ana", JOINED, LEFT))

    assert await charged_once(storage, tenant, server, "ana") == RIGHT


async def test_a_left_delivered_after_its_rooms_end_still_ends_the_stay_when_it_left(
    storage: Any, tenant: Tenant, server: LiveKitServer
) -> None:
    """room_finished's end is a guess (the participant left before the room ended), which the
    participant's own `left` replaces; the room's end then changes nothing."""
    await joined_with_camera(storage, server)
    await deliver(storage, room_finished(server, at(60)))
    await deliver(storage, server.left("ana", JOINED, LEFT))
    await deliver(storage, room_finished(server, at(61)))

    assert await charged_once(storage, tenant, server, "ana") == RIGHT


async def test_a_left_delivered_after_reconciliation_ended_its_stay_ends_it_when_it_left(
    storage: Any, tenant: Tenant, server: LiveKitServer
) -> None:
    """Reconciliation ends a stay at its last sign of life (the camera's publish, at 1): a
    guess that the participant's own `left` replaces."""
    await joined_with_camera(storage, server)
    await reconcile(storage, tenant, gone(server))
    await deliver(storage, server.left("ana", JOINED, LEFT))

    assert await charged_once(storage, tenant, server, "ana") == RIGHT


async def test_a_camera_end_arriving_after_its_hours_were_rolled_up_sends_the_rollups_back(
    storage: Any, tenant: Tenant, server: LiveKitServer
) -> None:
    """Hours older than rollups' late-data margin are not recomputed unless asked: a track's
    seconds that reach them later ask, from the stay's start."""
    await joined_with_camera(storage, server)
    later = at(5 * 60)
    leases = storage.rollup_leases
    assert await leases.acquire(tenant.id, "run", later, later) is not None
    await leases.release(tenant.id, "run", later, tenant.settings.rollup_cut)

    receive = wired(storage, FakeClock(later)).use_cases().receive_livekit_webhook()
    body, headers = unpublished(server, "ana", at(5))
    await receive(ReceiveLiveKitWebhookCommand(body, headers["Authorization"]))

    lease = await leases.acquire(tenant.id, "next", later, later)
    assert lease is not None and lease.resume_from == stamped(0).replace(minute=0, second=0)
