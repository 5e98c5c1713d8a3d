"""The reaper's sweep (EndStaysInFinishedRooms): a stay still open in a room that finished ends
with its room, whatever stopped the webhook that should have ended it."""

from datetime import datetime, timedelta
from typing import Any

import pytest
from dependency_injector import providers

from adapters.memory.storage import MemoryStorage
from application.credits.rate_book import RateBook
from application.sessions.reap_stale_sessions import ReapStaleSessions, ReapStaleSessionsCommand
from application.tenants.tenant_jobs import TenantFailure
from domain.credits import Rate
from domain.errors import Conflict
from domain.livekit import KIND, TrackReport
from domain.session import ROOM_FINISHED, Session, SessionStatus
from domain.tenants import Tenant
from entrypoints.container import Container
from tests.contract.races import Proxy
from tests.fakes import FakeClock, FakeTally
from tests.unit.conftest import Stays, with_server

pytestmark = pytest.mark.anyio

MINUTE = timedelta(minutes=1)


async def test_a_stay_open_in_a_finished_room_ends_with_it_charged_once(
    storage: MemoryStorage,
    tenant: Tenant,
    stays: Stays,
    rate_book: RateBook,
    reap: ReapStaleSessions,
    clock: FakeClock,
    tally: FakeTally,
) -> None:
    await with_server(storage, tenant, url=None)  # no server to ask: stays never go idle
    await rate_book.put(tenant.id, Rate(KIND, credits_per_minute=1))
    joined = clock.now()
    ana = await stays.open(tenant, "bootcamp", "ana", joined)
    camera = TrackReport("TR_cam", "video.seconds", published_at=joined + 5 * MINUTE)
    await storage.tracks.record(tenant.id, ana.id, camera)
    ben = await stays.open(tenant, "standup", "ben", joined)  # a room still going
    await storage.finished_rooms.finish(tenant.id, "RM_bootcamp", joined + 20 * MINUTE)
    clock.advance(90 * 60)

    first = await reap(ReapStaleSessionsCommand())
    again = await reap(ReapStaleSessionsCommand())

    assert (first.closed_by, tally.told, first.failures) == ({(KIND, "completed"): 1}, [20], [])
    assert again.closed == 0
    ended = await stays.get(ana)
    assert (ended.status, ended.exit_reason) == (SessionStatus.COMPLETED, ROOM_FINISHED)
    assert ended.ended_at == joined + 20 * MINUTE  # the room's end, not when it was swept
    assert ended.usage["video.seconds"] == 15 * 60  # its camera ended with it
    assert len(await storage.ledger.entries(tenant.id, "ana", 10)) == 1
    assert (await stays.get(ben)).status is SessionStatus.ACTIVE


async def test_a_room_is_known_by_its_sid_not_its_name(
    storage: MemoryStorage, tenant: Tenant, stays: Stays, reap: ReapStaleSessions, clock: FakeClock
) -> None:
    """A room's name is used again: the room that finished was an earlier `bootcamp`."""
    await with_server(storage, tenant, url=None)
    await storage.finished_rooms.finish(tenant.id, "RM_bootcamp-monday", clock.now())
    stay = await stays.open(
        tenant, "bootcamp", "ana", clock.now(), room_sid="RM_bootcamp-tuesday", participant_sid="PA"
    )

    assert (await reap(ReapStaleSessionsCommand())).closed == 0
    assert (await stays.get(stay)).status is SessionStatus.ACTIVE


async def test_every_page_of_open_stays_is_swept(
    storage: MemoryStorage, tenant: Tenant, stays: Stays, reap: ReapStaleSessions, clock: FakeClock
) -> None:
    """More open stays than a page (500): the one in the finished room started last."""
    await with_server(storage, tenant, url=None)
    for n in range(501):
        await stays.open(tenant, "lobby", f"guest{n}", clock.now())
    clock.advance(60)
    late = await stays.open(tenant, "bootcamp", "ana", clock.now())
    await storage.finished_rooms.finish(tenant.id, "RM_bootcamp", clock.now() + MINUTE)

    assert (await reap(ReapStaleSessionsCommand())).closed == 1
    assert (await stays.get(late)).status is SessionStatus.COMPLETED


class RefusesToEnd(Proxy):
    """LiveKitStays whose end of one stay a rule refuses (DomainError)."""

    def __init__(self, inner: Any, stay_id: str) -> None:
        super().__init__(inner)
        self._stay_id = stay_id

    async def end_with_room(self, stay: Session, finished_at: datetime, settings: Any) -> Any:
        if stay.id == self._stay_id:
            raise Conflict("the subject's erasure is at work")
        return await self._inner.end_with_room(stay, finished_at, settings)


async def test_a_stay_whose_end_is_refused_is_reported_and_the_others_still_end(
    container: Container, storage: MemoryStorage, tenant: Tenant, stays: Stays, clock: FakeClock
) -> None:
    await with_server(storage, tenant, url=None)
    ana = await stays.open(tenant, "bootcamp", "ana", clock.now())
    ben = await stays.open(tenant, "bootcamp", "ben", clock.now())
    await storage.finished_rooms.finish(tenant.id, "RM_bootcamp", clock.now() + MINUTE)
    refusing = RefusesToEnd(container.use_cases.livekit_stays(), ana.id)
    container.use_cases.livekit_stays.override(providers.Object(refusing))

    reaped = await container.jobs().reap_stale_sessions()(ReapStaleSessionsCommand())

    assert reaped.closed == 1
    assert reaped.failures == [
        TenantFailure("acme", f"stay {ana.id}: the subject's erasure is at work")
    ]
    assert (await stays.get(ana)).status is SessionStatus.ACTIVE
    assert (await stays.get(ben)).status is SessionStatus.COMPLETED
