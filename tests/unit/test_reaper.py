"""ReapStaleSessions: a session whose client went silent closes where it was last seen."""

from datetime import timedelta

import pytest

from adapters.memory.storage import MemoryStorage
from application.sessions.get_session import GetSession
from application.sessions.reap_stale_sessions import ReapStaleSessions, ReapStaleSessionsCommand
from application.sessions.record_heartbeat import RecordHeartbeat, RecordHeartbeatCommand
from domain.credits import Rate
from domain.errors import NotFound
from domain.session import ChargeState, Exit, SessionStatus
from domain.tenants import Tenant
from tests.fakes import FakeClock
from tests.unit.conftest import Starter, TenantMaker

pytestmark = pytest.mark.anyio

MINUTE = 60
WEEK = timedelta(days=7)


async def test_a_silent_session_ends_at_its_last_sign_of_life_not_when_reaped(
    start: Starter,
    record_heartbeat: RecordHeartbeat,
    reap: ReapStaleSessions,
    get_session: GetSession,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    session = await start()
    clock.advance(40 * MINUTE)
    await record_heartbeat(RecordHeartbeatCommand(tenant.id, session.id))
    last_seen = clock.now()
    clock.advance(20 * MINUTE)  # the tab died; the reaper notices much later

    assert (await reap(ReapStaleSessionsCommand())).closed == 1

    reaped = await get_session(tenant.id, session.id)
    assert reaped.status is SessionStatus.TIMED_OUT
    assert reaped.ended_at == last_seen != clock.now()
    assert reaped.duration_seconds == 40 * MINUTE


async def test_a_session_seen_within_the_idle_timeout_is_left_alone(
    start: Starter,
    reap: ReapStaleSessions,
    get_session: GetSession,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    session = await start()
    clock.advance(300)  # exactly the default timeout: not yet idle past it

    assert (await reap(ReapStaleSessionsCommand())).closed == 0
    assert (await get_session(tenant.id, session.id)).is_active

    clock.advance(1)
    assert (await reap(ReapStaleSessionsCommand())).closed == 1


async def test_each_tenant_has_its_own_idle_timeout(
    start: Starter,
    reap: ReapStaleSessions,
    get_session: GetSession,
    make_tenant: TenantMaker,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    patient = await make_tenant("patient", idle_timeout_seconds=3600)
    idle = await start()
    kept = await start(tenant=patient)
    clock.advance(200)
    alive = await start()
    clock.advance(200)

    assert (await reap(ReapStaleSessionsCommand())).closed == 1

    assert (await get_session(tenant.id, idle.id)).status is SessionStatus.TIMED_OUT
    assert (await get_session(tenant.id, alive.id)).is_active
    assert (await get_session(patient.id, kept.id)).is_active


async def test_the_reaper_can_be_run_for_one_tenant(
    start: Starter, reap: ReapStaleSessions, make_tenant: TenantMaker, clock: FakeClock
) -> None:
    other = await make_tenant("globex")
    await start()
    await start(tenant=other)
    clock.advance(10 * MINUTE)

    assert (await reap(ReapStaleSessionsCommand("globex"))).closed == 1
    assert (await reap(ReapStaleSessionsCommand("acme"))).closed == 1
    assert (await reap(ReapStaleSessionsCommand())).closed == 0
    with pytest.raises(NotFound):
        await reap(ReapStaleSessionsCommand("nobody"))


async def test_a_reaped_session_is_charged_only_for_the_time_it_was_seen(
    start: Starter,
    record_heartbeat: RecordHeartbeat,
    reap: ReapStaleSessions,
    storage: MemoryStorage,
    get_session: GetSession,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    await storage.rates.put(tenant.id, Rate("webinar", credits_per_minute=1))
    session = await start()
    clock.advance(30 * MINUTE)
    await record_heartbeat(RecordHeartbeatCommand(tenant.id, session.id))
    clock.advance(30 * MINUTE)

    await reap(ReapStaleSessionsCommand())

    reaped = await get_session(tenant.id, session.id)
    assert reaped.charge_state is ChargeState.CHARGED
    assert reaped.charge is not None and reaped.charge.credits == 30


async def test_the_reaper_settles_a_charge_that_a_crash_left_pending(
    start: Starter,
    reap: ReapStaleSessions,
    storage: MemoryStorage,
    get_session: GetSession,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    await storage.rates.put(tenant.id, Rate("webinar", credits_per_minute=2))
    session = await start()
    clock.advance(3 * MINUTE)
    # Closed in storage, then the process died before charging it.
    await storage.sessions.close(
        tenant.id, session.id, Exit(at=clock.now()), frozenset({"webinar"}), clock.now(), WEEK
    )

    assert (await reap(ReapStaleSessionsCommand())).closed == 0

    settled = await get_session(tenant.id, session.id)
    assert settled.charge_state is ChargeState.CHARGED
    assert settled.charge is not None and settled.charge.credits == 6
    assert (await storage.ledger.balance(tenant.id, "u1")).consumed == 6
