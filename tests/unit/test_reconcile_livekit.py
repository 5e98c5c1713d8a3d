"""ReconcileLiveKit: LiveKit servers are asked who is in the rooms of open stays; a participant
still there was seen now, one who left ends where last seen, and a server that does not answer
changes nothing."""

from datetime import timedelta

import pytest
from dependency_injector import providers

from adapters.memory.storage import MemoryStorage
from application.credits.rate_book import RateBook
from application.livekit.ports import LiveKitUnavailable
from application.livekit.reconcile_livekit import (
    ReconcileLiveKit,
    ReconcileLiveKitCommand,
    Unreachable,
)
from application.tenants.tenant_jobs import TenantFailure
from domain.credits import Rate
from domain.errors import NotFound
from domain.livekit import KIND, LiveKitAccount, TrackReport
from domain.session import SessionStatus
from domain.tenants import Tenant
from entrypoints.container import Container
from entrypoints.container.jobs import JobContainer
from tests.fakes import FakeClock, FakeRoomService
from tests.unit.conftest import LIVEKIT_URL as LK
from tests.unit.conftest import Stays, TenantMaker, with_server

pytestmark = pytest.mark.anyio

MINUTE = 60


@pytest.fixture
def rooms() -> FakeRoomService:
    return FakeRoomService()


@pytest.fixture
def reconcile(container: Container, jobs: JobContainer, rooms: FakeRoomService) -> ReconcileLiveKit:
    container.outside.livekit_rooms.override(providers.Object(rooms))
    return jobs.reconcile_livekit()


async def test_a_participant_still_in_the_room_was_seen_now(
    storage: MemoryStorage,
    tenant: Tenant,
    stays: Stays,
    rooms: FakeRoomService,
    reconcile: ReconcileLiveKit,
    clock: FakeClock,
) -> None:
    await with_server(storage, tenant)
    stay = await stays.open(tenant, "bootcamp", "ana", clock.now())
    rooms.rooms[LK] = {"bootcamp": {"PA_ana", "PA_ben"}}
    clock.advance(30 * MINUTE)

    done = await reconcile(ReconcileLiveKitCommand())

    assert (done.present, done.ended, done.problems) == (1, 0, [])
    kept = await stays.get(stay)
    assert kept.status is SessionStatus.ACTIVE and kept.last_seen_at == clock.now()


async def test_a_participant_gone_ends_completed_where_last_seen_charged_once(
    storage: MemoryStorage,
    tenant: Tenant,
    stays: Stays,
    rooms: FakeRoomService,
    reconcile: ReconcileLiveKit,
    rate_book: RateBook,
    clock: FakeClock,
) -> None:
    await with_server(storage, tenant)
    await rate_book.put(tenant.id, Rate(KIND, credits_per_minute=1))
    joined = clock.now()
    stay = await stays.open(tenant, "bootcamp", "ana", joined)
    camera = TrackReport("TR_cam", "video.seconds", published_at=joined + timedelta(minutes=5))
    await storage.tracks.record(tenant.id, stay.id, camera)
    await storage.sessions.heartbeat(tenant.id, stay.id, joined + timedelta(minutes=20))
    rooms.rooms[LK] = {"bootcamp": {"PA_ben"}}  # ana's `left` webhook was dropped
    clock.advance(60 * MINUTE)

    first, again = (
        await reconcile(ReconcileLiveKitCommand()),
        await reconcile(ReconcileLiveKitCommand()),
    )

    assert (first.ended, again.ended, again.present) == (1, 0, 0)
    ended = await stays.get(stay)
    assert ended.status is SessionStatus.COMPLETED and ended.exit_reason == "reconciled"
    assert ended.ended_at == joined + timedelta(minutes=20)
    assert ended.usage["video.seconds"] == 15 * MINUTE  # its camera ended with it
    assert ended.charge is not None and ended.charge.credits == 20
    assert len(await storage.ledger.entries(tenant.id, "ana", 10)) == 1


async def test_a_room_that_no_longer_exists_ends_every_stay_in_it(
    storage: MemoryStorage,
    tenant: Tenant,
    stays: Stays,
    rooms: FakeRoomService,
    reconcile: ReconcileLiveKit,
    clock: FakeClock,
) -> None:
    await with_server(storage, tenant)
    closed = [await stays.open(tenant, "bootcamp", name, clock.now()) for name in ("ana", "ben")]
    elsewhere = await stays.open(tenant, "standup", "cy", clock.now())
    rooms.rooms[LK] = {"standup": {"PA_cy"}}
    clock.advance(10 * MINUTE)

    done = await reconcile(ReconcileLiveKitCommand())

    assert (done.ended, done.present) == (2, 1)
    assert [(await stays.get(s)).status for s in closed] == [SessionStatus.COMPLETED] * 2
    assert (await stays.get(elsewhere)).is_active
    assert sorted(rooms.asked) == [(LK, "bootcamp"), (LK, "standup")]  # once per room


async def test_a_server_that_does_not_answer_changes_nothing_and_is_reported(
    storage: MemoryStorage,
    tenant: Tenant,
    make_tenant: TenantMaker,
    stays: Stays,
    rooms: FakeRoomService,
    reconcile: ReconcileLiveKit,
    clock: FakeClock,
) -> None:
    await with_server(storage, tenant)
    silent = [await stays.open(tenant, room, "ana", clock.now()) for room in ("r1", "r2")]
    rooms.down[LK] = LiveKitUnavailable("no answer within 5 s")
    globex = await make_tenant("globex")
    await with_server(storage, globex, "https://lk.globex.test")
    served = await stays.open(globex, "r1", "ben", clock.now())
    rooms.rooms["https://lk.globex.test"] = {"r1": set()}
    clock.advance(10 * MINUTE)

    done = await reconcile(ReconcileLiveKitCommand())

    assert done.unreachable == [Unreachable("acme", LK, "no answer within 5 s")]
    assert done.problems == [f"tenant acme: LiveKit server {LK}: no answer within 5 s"]
    assert (done.unknown, done.ended, done.failures) == (2, 1, [])
    for stay in silent:
        assert await stays.get(stay) == stay  # still active, last seen when it was
    assert (await stays.get(served)).status is SessionStatus.COMPLETED
    assert rooms.asked.count((LK, "r1")) + rooms.asked.count((LK, "r2")) == 1  # not asked again


async def test_a_tenant_that_fails_is_reported_and_the_others_are_served(
    storage: MemoryStorage,
    tenant: Tenant,
    make_tenant: TenantMaker,
    stays: Stays,
    rooms: FakeRoomService,
    reconcile: ReconcileLiveKit,
    clock: FakeClock,
) -> None:
    await with_server(storage, tenant)
    await stays.open(tenant, "r1", "ana", clock.now())
    rooms.down[LK] = RuntimeError("something nobody expected")
    globex = await make_tenant("globex")
    await with_server(storage, globex, "https://lk.globex.test")
    served = await stays.open(globex, "r1", "ben", clock.now())
    rooms.rooms["https://lk.globex.test"] = {}

    done = await reconcile(ReconcileLiveKitCommand())

    assert done.failures == [TenantFailure("acme", "RuntimeError: something nobody expected")]
    assert (await stays.get(served)).status is SessionStatus.COMPLETED


async def test_a_room_may_be_on_any_of_the_tenants_servers(
    storage: MemoryStorage,
    tenant: Tenant,
    stays: Stays,
    rooms: FakeRoomService,
    reconcile: ReconcileLiveKit,
    clock: FakeClock,
) -> None:
    for key, url in (("APIa", LK), ("APIb", "https://lk2.example.com"), ("APIc", LK)):
        await storage.livekit_accounts.add(LiveKitAccount(key, tenant.id, "s", url))
    stay = await stays.open(tenant, "bootcamp", "ana", clock.now())
    rooms.rooms["https://lk2.example.com"] = {"bootcamp": {"PA_ana"}}

    done = await reconcile(ReconcileLiveKitCommand())

    assert (done.present, done.ended) == (1, 0)
    assert (await stays.get(stay)).is_active
    assert rooms.asked == [(LK, "bootcamp"), ("https://lk2.example.com", "bootcamp")]


async def test_tenants_without_a_server_and_stays_no_webhook_opened_are_left_alone(
    storage: MemoryStorage,
    tenant: Tenant,
    make_tenant: TenantMaker,
    stays: Stays,
    rooms: FakeRoomService,
    reconcile: ReconcileLiveKit,
    clock: FakeClock,
) -> None:
    await with_server(storage, tenant)
    by_a_client = await stays.open(tenant, "bootcamp", "ana", clock.now(), device="kiosk-1")
    webhooks_only = await make_tenant("globex")
    await with_server(storage, webhooks_only, url=None)
    untouched = await stays.open(webhooks_only, "bootcamp", "ben", clock.now())

    done = await reconcile(ReconcileLiveKitCommand())

    assert (done.tenants, done.present, done.ended, done.unknown) == (1, 0, 0, 0)
    assert await stays.get(by_a_client) == by_a_client
    assert await stays.get(untouched) == untouched
    assert rooms.asked == []


async def test_one_tenant_is_reconciled_by_name(
    storage: MemoryStorage,
    tenant: Tenant,
    make_tenant: TenantMaker,
    stays: Stays,
    rooms: FakeRoomService,
    reconcile: ReconcileLiveKit,
    clock: FakeClock,
) -> None:
    globex = await make_tenant("globex")
    for each in (tenant, globex):
        await with_server(storage, each)
        await stays.open(each, "bootcamp", f"{each.name}-user", clock.now())
    rooms.rooms[LK] = {"bootcamp": set()}

    done = await reconcile(ReconcileLiveKitCommand("globex"))

    assert (done.tenants, done.ended) == (1, 1)
    with pytest.raises(NotFound):
        await reconcile(ReconcileLiveKitCommand("nobody"))


async def test_a_stay_last_seen_before_the_late_data_window_still_ends_where_it_was_seen(
    storage: MemoryStorage,
    tenant: Tenant,
    stays: Stays,
    rooms: FakeRoomService,
    reconcile: ReconcileLiveKit,
    clock: FakeClock,
) -> None:
    """The LiveKit server's word is not a client's late data: nothing else would ever end it."""
    await with_server(storage, tenant)
    now = clock.now()
    forgotten = await stays.open(tenant, "bootcamp", "ana", now - timedelta(days=9))
    await storage.sessions.heartbeat(tenant.id, forgotten.id, now - timedelta(days=8))
    gone = await stays.open(tenant, "bootcamp", "ben", now - timedelta(days=10))
    await storage.sessions.heartbeat(tenant.id, gone.id, now - timedelta(hours=1))
    rooms.rooms[LK] = {"bootcamp": set()}

    done = await reconcile(ReconcileLiveKitCommand())

    assert done.failures == [] and done.ended == 2
    ended = await stays.get(forgotten)
    assert (ended.status, ended.ended_at) == (SessionStatus.COMPLETED, now - timedelta(days=8))
    assert (await stays.get(gone)).status is SessionStatus.COMPLETED
