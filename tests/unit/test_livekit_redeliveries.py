"""A redelivered LiveKit webhook is handled again, every step of it idempotent: it changes
nothing, and it is told apart by its id (ReceivedWebhook.redelivered)."""

from datetime import timedelta
from decimal import Decimal

import pytest

from adapters.memory.storage import MemoryStorage
from application.livekit.receive_livekit_webhook import (
    ReceivedWebhook,
    ReceiveLiveKitWebhook,
    ReceiveLiveKitWebhookCommand,
)
from domain.credits import MeterRate, Rate
from domain.livekit import KIND, LiveKitAccount, session_id_of
from domain.session import Exit, SessionStatus
from domain.tenants import Tenant
from entrypoints.container.use_cases import UseCaseContainer
from tests.fakes import FakeClock, FakeTally
from tests.livekit_server import LiveKitServer

pytestmark = pytest.mark.anyio

STAY = session_id_of("RM_bootcamp", "PA_ana")


async def test_each_webhook_of_a_stay_redelivered_changes_nothing_and_says_so(
    receive: ReceiveLiveKitWebhook,
    use_cases: UseCaseContainer,
    storage: MemoryStorage,
    tenant: Tenant,
    clock: FakeClock,
) -> None:
    server = LiveKitServer()
    await storage.livekit_accounts.add(LiveKitAccount(server.key, tenant.id, server.secret))
    video = MeterRate(per=Decimal(60), credits=2)
    await use_cases.rate_book().put(
        tenant.id, Rate("livekit", 1, meter_rates={"video.seconds": video})
    )
    t0 = clock.now() - timedelta(hours=1)
    minute = timedelta(minutes=1)
    webhooks = [
        server.joined("ana", t0),
        server.track("track_published", "ana", t0, "TR_cam", "CAMERA", t0 + minute),
        server.track("track_unpublished", "ana", t0, "TR_cam", "CAMERA", t0 + 4 * minute),
        server.track("track_published", "ana", t0, "TR_scr", "SCREEN_SHARE", t0 + 5 * minute),
        server.left("ana", t0, t0 + 10 * minute),
    ]

    async def deliver(n: int) -> ReceivedWebhook:
        body, headers = webhooks[n]
        return await receive(ReceiveLiveKitWebhookCommand(body, headers["Authorization"]))

    async def state() -> tuple[object, ...]:
        stay = await storage.sessions.get(tenant.id, STAY)
        events = await storage.events.find(tenant.id, STAY, 100)
        ledger = await storage.ledger.entries(tenant.id, "ana", 100)
        return stay, events, ledger

    for n in range(len(webhooks)):
        assert not (await deliver(n)).redelivered
        before = await state()
        again = await deliver(n)  # at once
        assert again.redelivered and not again.started and not again.ended
        assert await state() == before
    ended = await state()
    for n in range(len(webhooks)):  # after the stay ended
        assert (await deliver(n)).redelivered
        assert await state() == ended


async def test_a_left_that_corrects_the_reapers_uncharged_guess_tells_the_tally_its_charge(
    receive: ReceiveLiveKitWebhook,
    use_cases: UseCaseContainer,
    storage: MemoryStorage,
    tenant: Tenant,
    clock: FakeClock,
    tally: FakeTally,
) -> None:
    """The reaper closed Ana's stay at a guess and stopped before charging it. Her `left` then
    replaces the guess (a correction, not a close) and writes the stay's first charge: the
    tally (the `sessionmeter_credits_charged` metric) hears of it, as from no one else."""
    server = LiveKitServer()
    await storage.livekit_accounts.add(LiveKitAccount(server.key, tenant.id, server.secret))
    await use_cases.rate_book().put(tenant.id, Rate("livekit", 1))
    t0 = clock.now() - timedelta(hours=1)
    minute = timedelta(minutes=1)

    async def deliver(webhook: tuple[str, dict[str, str]]) -> ReceivedWebhook:
        body, headers = webhook
        return await receive(ReceiveLiveKitWebhookCommand(body, headers["Authorization"]))

    await deliver(server.joined("ana", t0))
    timed_out = Exit(at=t0 + 2 * minute, status=SessionStatus.TIMED_OUT)
    window = tenant.settings.late_data_window
    await storage.sessions.close(tenant.id, STAY, timed_out, frozenset({KIND}), clock.now(), window)

    received = await deliver(server.left("ana", t0, t0 + 10 * minute))

    stay = await storage.sessions.get(tenant.id, STAY)
    assert stay is not None and stay.charge is not None
    assert (stay.ended_at, stay.charge.credits) == (t0 + 10 * minute, 10)
    assert (received.ended, tally.told) == ((), [10])
