"""Unit tests run the use cases on the in-memory adapters, built by the container exactly as the
app builds them, with a fake clock.

The in-memory storage is the real adapter (the contract suite proves it behaves like the
others); only time is faked, so that "30 minutes later" is one call. A test that needs another
fake of the outside world (a LiveKit server, a database that does not answer) overrides that
provider of `container` before it asks for a use case.
"""

import uuid
from datetime import datetime
from typing import Any

import pytest
from dependency_injector import providers

from adapters.memory.storage import MemoryStorage
from application.credits.rate_book import RateBook
from application.livekit.receive_livekit_webhook import ReceiveLiveKitWebhook
from application.sessions.get_session import GetSession
from application.sessions.reap_stale_sessions import ReapStaleSessions
from application.sessions.record_exit import RecordExit
from application.sessions.record_heartbeat import RecordHeartbeat
from application.sessions.start_session import StartSession, StartSessionCommand
from application.tenants.create_tenant import CreateTenantCommand
from domain.livekit import KIND, LiveKitAccount, session_id_of
from domain.session import AttributeValue, Session, SessionRequest
from domain.tenants import Tenant, TenantSettings
from entrypoints.container import Container, build_container
from entrypoints.container.jobs import JobContainer
from entrypoints.container.use_cases import UseCaseContainer
from entrypoints.settings import Settings
from tests.fakes import FakeClock, FakeTally


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tally() -> FakeTally:
    return FakeTally()


@pytest.fixture
def container(clock: FakeClock, tally: FakeTally) -> Container:
    container = build_container(Settings(storage_url="memory://"))
    container.outside.clock.override(providers.Object(clock))
    container.outside.charge_tally.override(providers.Object(tally))
    return container


# The wired sub-containers themselves: their providers keep their types, which a lookup through
# `container.use_cases.<name>` loses. Overrides made on `container` later still reach them.
@pytest.fixture
def use_cases(container: Container) -> UseCaseContainer:
    return container.use_cases()


@pytest.fixture
def jobs(container: Container) -> JobContainer:
    return container.jobs()


@pytest.fixture
def storage(container: Container) -> MemoryStorage:
    storage = container.storage.backend()
    assert isinstance(storage, MemoryStorage)
    return storage


@pytest.fixture
async def tenant(use_cases: UseCaseContainer) -> Tenant:
    return await use_cases.create_tenant()(CreateTenantCommand("acme"))


@pytest.fixture
def receive(use_cases: UseCaseContainer) -> ReceiveLiveKitWebhook:
    """The LiveKit webhook's use case, as the route gets it."""
    return use_cases.receive_livekit_webhook()


class TenantMaker:
    """Tenants with settings other than the defaults (a short idle timeout, small batches)."""

    def __init__(self, storage: MemoryStorage, clock: FakeClock) -> None:
        self._storage = storage
        self._clock = clock

    async def __call__(self, name: str, **settings: Any) -> Tenant:
        tenant = Tenant(str(uuid.uuid4()), name, self._clock.now(), TenantSettings(**settings))
        await self._storage.tenants.add(tenant)
        return tenant


@pytest.fixture
def make_tenant(storage: MemoryStorage, clock: FakeClock) -> TenantMaker:
    return TenantMaker(storage, clock)


@pytest.fixture
def reap(jobs: JobContainer) -> ReapStaleSessions:
    return jobs.reap_stale_sessions()


@pytest.fixture
def rate_book(use_cases: UseCaseContainer) -> RateBook:
    return use_cases.rate_book()


@pytest.fixture
def start_session(use_cases: UseCaseContainer) -> StartSession:
    return use_cases.start_session()


@pytest.fixture
def record_exit(use_cases: UseCaseContainer) -> RecordExit:
    return use_cases.record_exit()


@pytest.fixture
def record_heartbeat(use_cases: UseCaseContainer) -> RecordHeartbeat:
    return use_cases.record_heartbeat()


@pytest.fixture
def get_session(use_cases: UseCaseContainer) -> GetSession:
    return use_cases.get_session()


class Starter:
    """Starts a session: a signed-in viewer on webinar w1 of acme, unless told otherwise."""

    def __init__(self, start_session: StartSession, tenant: Tenant) -> None:
        self._start_session = start_session
        self._tenant = tenant

    async def __call__(
        self, tenant: Tenant | None = None, session_id: str | None = None, **request: Any
    ) -> Session:
        tenant = tenant or self._tenant
        fields = {"kind": "webinar", "resource_id": "w1", "subject_id": "u1", **request}
        command = StartSessionCommand(
            tenant.id, SessionRequest(**fields), session_id, tenant.settings
        )
        return (await self._start_session(command)).session


@pytest.fixture
def start(start_session: StartSession, tenant: Tenant) -> Starter:
    return Starter(start_session, tenant)


LIVEKIT_URL = "https://lk.example.com"


class Stays:
    """Stays as LiveKit's webhooks open them: a session per participant sid, of the room."""

    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage

    async def open(
        self,
        tenant: Tenant,
        room: str,
        identity: str,
        joined: datetime,
        **attributes: AttributeValue,
    ) -> Session:
        sid = f"PA_{identity}"
        request = SessionRequest(
            kind=KIND,
            resource_id=room,
            subject_id=identity,
            started_at=joined,
            attributes=attributes or {"room_sid": f"RM_{room}", "participant_sid": sid},
        )
        stay = Session.start(tenant.id, session_id_of(f"RM_{room}", sid), request, joined)
        await self._storage.sessions.add(stay)
        return stay

    async def get(self, stay: Session) -> Session:
        found = await self._storage.sessions.get(stay.tenant_id, stay.id)
        assert found is not None
        return found


@pytest.fixture
def stays(storage: MemoryStorage) -> Stays:
    return Stays(storage)


async def with_server(
    storage: MemoryStorage, tenant: Tenant, url: str | None = LIVEKIT_URL
) -> None:
    await storage.livekit_accounts.add(LiveKitAccount(f"API{tenant.name}", tenant.id, "s", url))
