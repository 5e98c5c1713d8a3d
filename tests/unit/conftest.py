"""Unit tests run the use cases on the in-memory adapters, wired by hand, with a fake clock.

The in-memory storage is the real adapter (the contract suite proves it behaves like the
others); only time is faked, so that "30 minutes later" is one call.
"""

import uuid
from typing import Any

import pytest

from adapters.memory.storage import MemoryStorage
from application.credits.deduct_credits import DeductCredits
from application.credits.rate_book import RateBook
from application.credits.running_cost import RunningCost
from application.rollups.rollup_rewinds import RollupRewinds
from application.sessions.get_session import GetSession
from application.sessions.record_exit import RecordExit
from application.sessions.record_heartbeat import RecordHeartbeat
from application.sessions.start_session import StartSession, StartSessionCommand
from application.tenants.create_tenant import CreateTenant
from application.trials.plan_of_subject import PlanOfSubject
from domain.session import Session, SessionRequest
from domain.tenants import Tenant, TenantSettings
from tests.fakes import FakeClock


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
async def tenant(storage: MemoryStorage, clock: FakeClock) -> Tenant:
    return await CreateTenant(storage.tenants, clock)("acme")


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
def rate_book(storage: MemoryStorage, clock: FakeClock) -> RateBook:
    return RateBook(storage.rates, clock)


@pytest.fixture
def deduct_credits(storage: MemoryStorage, rate_book: RateBook, clock: FakeClock) -> DeductCredits:
    return DeductCredits(rate_book, storage.ledger, clock)


@pytest.fixture
def start_session(storage: MemoryStorage, clock: FakeClock) -> StartSession:
    plan_of_subject = PlanOfSubject(storage.plans, storage.subscriptions)
    return StartSession(storage.sessions, storage.rates, storage.ledger, plan_of_subject, clock)


@pytest.fixture
def record_exit(
    storage: MemoryStorage, deduct_credits: DeductCredits, clock: FakeClock
) -> RecordExit:
    return RecordExit(
        storage.sessions, deduct_credits, RollupRewinds(storage.rollup_leases, clock), clock
    )


@pytest.fixture
def running_cost(storage: MemoryStorage, rate_book: RateBook, clock: FakeClock) -> RunningCost:
    return RunningCost(rate_book, storage.ledger, clock)


@pytest.fixture
def record_heartbeat(
    storage: MemoryStorage, running_cost: RunningCost, clock: FakeClock
) -> RecordHeartbeat:
    return RecordHeartbeat(storage.sessions, running_cost, clock)


@pytest.fixture
def get_session(storage: MemoryStorage) -> GetSession:
    return GetSession(storage.sessions)


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
