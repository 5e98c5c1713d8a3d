"""Use cases on the in-memory adapters with a fake clock."""

import uuid
from datetime import timedelta

import pytest

from adapters.memory.storage import MemoryStorage
from application.authenticate import CACHE_TTL, Authenticate
from application.create_api_key import CreateApiKey
from application.create_tenant import CreateTenant
from application.deduct_credits import DeductCredits
from application.ingest_events import IngestEvents, IngestEventsCommand
from application.list_sessions import ListSessions
from application.plan_of_subject import PlanOfSubject
from application.ports import SessionFilter
from application.rate_book import RateBook
from application.reap_stale_sessions import ReapStaleSessions
from application.record_exit import RecordExit, RecordExitCommand
from application.record_heartbeat import RecordHeartbeat, RecordHeartbeatCommand
from application.start_session import StartSession, StartSessionCommand
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge, Unauthorized
from domain.events import Event, EventRejection
from domain.session import SessionRequest, SessionStatus
from domain.tenants import Role, Tenant, TenantSettings
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


def charging(storage: MemoryStorage) -> DeductCredits:
    return DeductCredits(RateBook(storage.rates, FakeClock()), storage.ledger, FakeClock())


@pytest.fixture
async def tenant(storage: MemoryStorage, clock: FakeClock) -> Tenant:
    return await CreateTenant(storage.tenants, clock)("acme")


async def start(storage: MemoryStorage, clock: FakeClock, tenant: Tenant, **fields: object) -> str:
    session_id = fields.pop("session_id", None)
    request = SessionRequest(
        **{"kind": "webinar", "resource_id": "w1", "subject_id": "u1", **fields}
    )  # type: ignore[arg-type]
    command = StartSessionCommand(tenant.id, request, session_id)  # type: ignore[arg-type]
    return (
        await StartSession(
            storage.sessions,
            storage.rates,
            storage.ledger,
            PlanOfSubject(storage.plans, storage.subscriptions),
            clock,
        )(command)
    ).session.id


async def test_a_client_supplied_id_makes_the_start_idempotent(
    storage: MemoryStorage, clock: FakeClock, tenant: Tenant
) -> None:
    start_session = StartSession(
        storage.sessions,
        storage.rates,
        storage.ledger,
        PlanOfSubject(storage.plans, storage.subscriptions),
        clock,
    )
    session_id = str(uuid.uuid4())
    request = SessionRequest("webinar", "w1", "u1")

    first = await start_session(StartSessionCommand(tenant.id, request, session_id))
    clock.advance(30)
    again = await start_session(StartSessionCommand(tenant.id, request, session_id.upper()))

    assert first.created and not again.created
    assert again.session == first.session
    with pytest.raises(Conflict):
        await start_session(
            StartSessionCommand(tenant.id, SessionRequest("webinar", "w2", "u1"), session_id)
        )
    with pytest.raises(InvalidInput):
        await start_session(StartSessionCommand(tenant.id, request, "not-a-uuid"))


async def test_heartbeats_and_exits_of_malformed_ids_find_nothing(
    storage: MemoryStorage, clock: FakeClock, tenant: Tenant
) -> None:
    with pytest.raises(NotFound):
        await RecordHeartbeat(storage.sessions, clock)(RecordHeartbeatCommand(tenant.id, "nope"))
    with pytest.raises(NotFound):
        await RecordExit(storage.sessions, charging(storage), clock)(
            RecordExitCommand(tenant.id, "nope")
        )


async def test_a_client_may_not_say_its_session_timed_out(
    storage: MemoryStorage, clock: FakeClock, tenant: Tenant
) -> None:
    session_id = await start(storage, clock, tenant)
    with pytest.raises(InvalidInput) as refused:
        await RecordExit(storage.sessions, charging(storage), clock)(
            RecordExitCommand(tenant.id, session_id, status="timed_out")
        )
    assert refused.value.field == "status"


async def test_exit_defaults_to_now_and_completed(
    storage: MemoryStorage, clock: FakeClock, tenant: Tenant
) -> None:
    session_id = await start(storage, clock, tenant)
    clock.advance(90)

    recorded = await RecordExit(storage.sessions, charging(storage), clock)(
        RecordExitCommand(tenant.id, session_id)
    )

    assert recorded.closed
    assert recorded.session.status is SessionStatus.COMPLETED
    assert recorded.session.duration_seconds == 90


async def test_the_reaper_closes_only_sessions_idle_past_their_tenants_timeout(
    storage: MemoryStorage, clock: FakeClock
) -> None:
    create = CreateTenant(storage.tenants, clock)
    patient = Tenant("p", "patient", clock.now(), TenantSettings(idle_timeout_seconds=3600))
    await storage.tenants.add(patient)
    eager = await create("eager")
    idle = await start(storage, clock, eager)
    kept = await start(storage, clock, patient)
    clock.advance(200)
    alive = await start(storage, clock, eager)
    clock.advance(200)

    closed = await ReapStaleSessions(storage.tenants, storage.sessions, charging(storage), clock)()

    assert closed == 1
    reaped = await storage.sessions.get(eager.id, idle)
    assert reaped.status is SessionStatus.TIMED_OUT and reaped.duration_seconds == 0
    assert (await storage.sessions.get(eager.id, alive)).is_active
    assert (await storage.sessions.get(patient.id, kept)).is_active
    with pytest.raises(NotFound):
        await ReapStaleSessions(storage.tenants, storage.sessions, charging(storage), clock)(
            "nobody"
        )


async def test_a_batch_over_the_tenants_limit_stores_nothing(
    storage: MemoryStorage, clock: FakeClock
) -> None:
    tenant = Tenant("t", "small", clock.now(), TenantSettings(max_batch_events=2))
    await storage.tenants.add(tenant)
    session_id = await start(storage, clock, tenant)
    events = [Event(session_id, n, "tap", clock.now()) for n in (1, 2, 3)]

    with pytest.raises(PayloadTooLarge):
        await IngestEvents(storage.events)(IngestEventsCommand(tenant, events))

    assert (await storage.sessions.get(tenant.id, session_id)).event_count == 0


async def test_unreadable_events_are_reported_in_batch_order(
    storage: MemoryStorage, clock: FakeClock, tenant: Tenant
) -> None:
    session_id = await start(storage, clock, tenant)
    events = [
        EventRejection(0, "validation_error: at: required"),
        Event(session_id, 1, "tap", clock.now()),
        Event(str(uuid.uuid4()), 1, "tap", clock.now()),
    ]

    outcome = await IngestEvents(storage.events)(IngestEventsCommand(tenant, events))

    assert outcome.inserted == 1
    assert [r.index for r in outcome.rejections] == [0, 2]


async def test_listing_walks_every_page_once(
    storage: MemoryStorage, clock: FakeClock, tenant: Tenant
) -> None:
    made = []
    for _ in range(7):
        made.append(await start(storage, clock, tenant))
        clock.advance(1)
    list_sessions = ListSessions(storage.sessions)

    seen, cursor = [], None
    while True:
        page = await list_sessions(tenant.id, SessionFilter(), limit=3, cursor=cursor)
        seen += [s.id for s in page.items]
        if (cursor := page.next_cursor) is None:
            break

    assert seen == list(reversed(made))
    for bad in ("", "not base64!", "WzFd"):
        with pytest.raises(InvalidInput):
            await list_sessions(tenant.id, SessionFilter(), cursor=bad)
    with pytest.raises(InvalidInput):
        await list_sessions(tenant.id, SessionFilter(), limit=501)


async def test_keys_authenticate_their_tenant_and_role_and_are_remembered_briefly(
    storage: MemoryStorage, clock: FakeClock, tenant: Tenant
) -> None:
    _, secret = await CreateApiKey(storage.tenants, storage.api_keys, clock)("acme", Role.INGEST)
    authenticate = Authenticate(storage.api_keys, storage.tenants, clock)

    principal = await authenticate(secret)

    assert principal.tenant == tenant and principal.role is Role.INGEST
    with pytest.raises(Forbidden):
        principal.require(Role.ADMIN)
    for wrong in (None, "", "sm_unknown"):
        with pytest.raises(Unauthorized):
            await authenticate(wrong)
    storage.api_keys._store.api_keys.clear()  # the key is revoked behind the cache's back
    assert await authenticate(secret) == principal
    clock.advance(CACHE_TTL.total_seconds() + 1)
    with pytest.raises(Unauthorized):
        await authenticate(secret)


async def test_keys_need_a_known_tenant_and_role(
    storage: MemoryStorage, clock: FakeClock, tenant: Tenant
) -> None:
    create_key = CreateApiKey(storage.tenants, storage.api_keys, clock)
    with pytest.raises(NotFound):
        await create_key("nobody", Role.ADMIN)
    with pytest.raises(InvalidInput):
        await create_key("acme", "owner")
    with pytest.raises(Conflict):
        await CreateTenant(storage.tenants, clock)("acme")


async def test_a_session_starting_later_than_the_clock_allows_is_refused(
    storage: MemoryStorage, clock: FakeClock, tenant: Tenant
) -> None:
    with pytest.raises(InvalidInput):
        await start(storage, clock, tenant, started_at=clock.now() + timedelta(minutes=6))
