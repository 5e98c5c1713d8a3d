"""A LiveKit stay's webhooks handled at the same time by separate processes, on every store:
a track published as its stay ends still ends with it, its seconds counted and charged once."""

import asyncio
import threading
from decimal import Decimal
from typing import Any

import pytest

from application.livekit.ports import TrackLog
from application.livekit.receive_livekit_webhook import ReceiveLiveKitWebhookCommand
from domain.credits import MeterRate, Rate
from domain.livekit import LiveKitAccount, TrackReport, session_id_of
from domain.session import ChargeState
from domain.tenants import Tenant
from tests.contract.builders import at, wired
from tests.contract.races import Race
from tests.fakes import FakeClock
from tests.livekit_server import LiveKitServer

pytestmark = pytest.mark.anyio

Webhook = tuple[str, dict[str, str]]
# A credit a minute of the stay, two a minute of camera.
RATE = Rate("livekit", 1, meter_rates={"video.seconds": MeterRate(Decimal(60), 2)})
JOINED, PUBLISHED, LEFT = at(0), at(1), at(11)  # LiveKit stamps whole seconds: T0's ms go
PRICE = 11 * 1 + 10 * 2
WAIT_SECONDS = 30.0


@pytest.fixture
async def server(storage: Any, tenant: Tenant) -> LiveKitServer:
    server = LiveKitServer()
    await storage.livekit_accounts.add(LiveKitAccount(server.key, tenant.id, server.secret))
    await storage.rates.put(tenant.id, RATE)
    return server


async def deliver(storage: Any, webhook: Webhook, **ports: object) -> None:
    body, headers = webhook
    receive = wired(storage, FakeClock(at(30)), **ports).use_cases().receive_livekit_webhook()
    await receive(ReceiveLiveKitWebhookCommand(body, headers["Authorization"]))


def published(server: LiveKitServer, who: str) -> Webhook:
    return server.track("track_published", who, JOINED, f"TR_{who}", "CAMERA", PUBLISHED)


async def charged_once(storage: Any, tenant: Tenant, server: LiveKitServer, who: str) -> Any:
    """The stay, its open tracks and what it was charged, once any settlement a correction
    overtook is finished (as the reaper does)."""
    for pending in await storage.sessions.pending_charges(tenant.id, 100):
        await wired(storage, FakeClock(at(31))).use_cases().deduct_credits()(pending)
    stay = await storage.sessions.get(tenant.id, session_id_of(server.room["sid"], f"PA_{who}"))
    entries = await storage.ledger.entries(tenant.id, who, limit=100)
    return (
        stay.usage.get("video.seconds"),
        await storage.tracks.open_tracks(tenant.id, stay.id),
        stay.charge_state,
        stay.charge.credits if stay.charge else None,
        sum(e.amount for e in entries if e.session_id == stay.id),
    )


class LooksThenWaits(TrackLog):
    """A racer's tracks that, after its first look at the open tracks, let the other racer go
    and wait for it to be done: the `left` has looked for open tracks and not yet closed the
    stay when the `track_published` is handled from start to end."""

    def __init__(self, tracks: TrackLog, looked: threading.Event, done: threading.Event) -> None:
        self._tracks, self._looked, self._done = tracks, looked, done

    async def record(self, tenant_id: str, session_id: str, report: TrackReport) -> bool:
        return await self._tracks.record(tenant_id, session_id, report)

    async def open_tracks(self, tenant_id: str, session_id: str) -> list[TrackReport]:
        found = await self._tracks.open_tracks(tenant_id, session_id)
        if not self._looked.is_set():
            self._looked.set()
            assert await asyncio.to_thread(self._done.wait, WAIT_SECONDS)
        return found


async def test_a_track_published_between_a_lefts_look_at_the_tracks_and_its_exit_ends_with_it(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    await deliver(storage, server.joined("ana", JOINED))
    looked, done = threading.Event(), threading.Event()

    async def leave(s: Any) -> None:
        await deliver(
            s, server.left("ana", JOINED, LEFT), tracks=LooksThenWaits(s.tracks, looked, done)
        )

    async def publish(s: Any) -> None:
        assert await asyncio.to_thread(looked.wait, WAIT_SECONDS)
        try:
            await deliver(s, published(server, "ana"))
        finally:
            done.set()

    await race(leave, publish)

    assert await charged_once(storage, tenant, server, "ana") == (
        600,
        [],
        ChargeState.CHARGED,
        PRICE,
        -PRICE,
    )


async def test_stays_whose_track_is_published_as_they_end_are_each_charged_for_it_once(
    storage: Any, tenant: Tenant, server: LiveKitServer, race: Race
) -> None:
    people = [f"p{n}" for n in range(8)]
    for who in people:
        await deliver(storage, server.joined(who, JOINED))
    webhooks = [
        w for who in people for w in (published(server, who), server.left(who, JOINED, LEFT))
    ]

    await race(*(lambda s, w=w: deliver(s, w) for w in webhooks))

    for who in people:
        assert await charged_once(storage, tenant, server, who) == (
            600,
            [],
            ChargeState.CHARGED,
            PRICE,
            -PRICE,
        ), who
