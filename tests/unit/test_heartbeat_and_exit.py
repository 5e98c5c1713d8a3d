"""RecordHeartbeat, RecordExit and GetSession: a session lives, then closes exactly once."""

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from adapters.memory.storage import MemoryStorage
from application.sessions.get_session import GetSession
from application.sessions.record_exit import RecordExit, RecordExitCommand
from application.sessions.record_heartbeat import RecordHeartbeat, RecordHeartbeatCommand
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events import Event
from domain.session import ChargeState, SessionStatus
from domain.tenants import Tenant
from domain.usage import Usage
from tests.fakes import FakeClock
from tests.unit.conftest import Starter, TenantMaker

pytestmark = pytest.mark.anyio

MINUTE = 60


async def test_a_heartbeat_without_a_time_is_now(
    start: Starter, record_heartbeat: RecordHeartbeat, clock: FakeClock, tenant: Tenant
) -> None:
    session = await start()
    clock.advance(MINUTE)
    alive = await record_heartbeat(RecordHeartbeatCommand(tenant.id, session.id))
    assert alive.session.last_seen_at == clock.now()


async def test_heartbeats_move_last_seen_forward_never_back(
    start: Starter,
    record_heartbeat: RecordHeartbeat,
    get_session: GetSession,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    session = await start()
    clock.advance(10 * MINUTE)
    await record_heartbeat(RecordHeartbeatCommand(tenant.id, session.id, at=clock.now()))
    late = clock.now() - timedelta(minutes=4)  # sent earlier, delivered out of order

    answered = await record_heartbeat(RecordHeartbeatCommand(tenant.id, session.id, at=late))

    assert answered.session.last_seen_at == clock.now()
    assert (await get_session(tenant.id, session.id)).last_seen_at == clock.now()


@pytest.mark.parametrize(
    ("at", "field"),
    [
        (lambda now: now + timedelta(minutes=6), "at"),
        (lambda now: now.replace(tzinfo=None), "at"),
    ],
    ids=["more than 5 minutes ahead", "without an offset"],
)
async def test_a_heartbeat_time_must_be_believable(
    start: Starter,
    record_heartbeat: RecordHeartbeat,
    clock: FakeClock,
    tenant: Tenant,
    at: Callable[[datetime], datetime],
    field: str,
) -> None:
    session = await start()
    with pytest.raises(InvalidInput) as refused:
        await record_heartbeat(RecordHeartbeatCommand(tenant.id, session.id, at=at(clock.now())))
    assert refused.value.field == field


async def test_a_heartbeat_of_an_ended_session_is_a_conflict(
    start: Starter, record_heartbeat: RecordHeartbeat, record_exit: RecordExit, tenant: Tenant
) -> None:
    session = await start()
    await record_exit(RecordExitCommand(tenant.id, session.id))
    with pytest.raises(Conflict):
        await record_heartbeat(RecordHeartbeatCommand(tenant.id, session.id))


async def test_an_exit_defaults_to_now_and_completed(
    start: Starter, record_exit: RecordExit, clock: FakeClock, tenant: Tenant
) -> None:
    session = await start()
    clock.advance(90)

    recorded = await record_exit(RecordExitCommand(tenant.id, session.id))

    assert recorded.closed
    assert recorded.session.status is SessionStatus.COMPLETED
    assert recorded.session.ended_at == clock.now()
    assert recorded.session.duration_seconds == 90


async def test_an_exit_records_how_and_why_the_session_ended(
    start: Starter, record_exit: RecordExit, clock: FakeClock, tenant: Tenant
) -> None:
    session = await start()
    clock.advance(MINUTE)
    summary = {"funnel": ["cart", "pay"], "paid": False}

    recorded = await record_exit(
        RecordExitCommand(
            tenant.id, session.id, status="abandoned", reason="tab closed", summary=summary
        )
    )

    assert recorded.session.status is SessionStatus.ABANDONED
    assert (recorded.session.exit_reason, recorded.session.summary) == ("tab closed", summary)


async def test_an_exit_before_the_start_is_invalid_and_the_session_stays_open(
    start: Starter, record_exit: RecordExit, get_session: GetSession, tenant: Tenant
) -> None:
    session = await start()
    with pytest.raises(InvalidInput) as refused:
        await record_exit(
            RecordExitCommand(tenant.id, session.id, at=session.started_at - timedelta(seconds=1))
        )
    assert refused.value.field == "at"
    assert (await get_session(tenant.id, session.id)).is_active


@pytest.mark.parametrize("at", [datetime(2026, 11, 24, 12, 1), None])
async def test_an_exit_time_must_carry_an_offset_and_not_be_far_ahead(
    start: Starter,
    record_exit: RecordExit,
    clock: FakeClock,
    tenant: Tenant,
    at: datetime | None,
) -> None:
    session = await start()
    with pytest.raises(InvalidInput) as refused:
        await record_exit(
            RecordExitCommand(tenant.id, session.id, at=at or clock.now() + timedelta(minutes=6))
        )
    assert refused.value.field == "at"


async def test_a_second_exit_is_a_replay_that_changes_nothing_and_adds_no_usage(
    start: Starter,
    record_exit: RecordExit,
    get_session: GetSession,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    session = await start()
    clock.advance(10 * MINUTE)
    exit = RecordExitCommand(tenant.id, session.id, status="abandoned", usage={"chat_messages": 3})
    first = await record_exit(exit)
    clock.advance(2)  # the fetch arrives after the beacon

    second = await record_exit(exit)
    third = await record_exit(
        RecordExitCommand(tenant.id, session.id, status="failed", usage={"chat_messages": 1})
    )

    assert first.closed and not second.closed and not third.closed
    for replay in (second, third):
        assert replay.session.ended_at == first.session.ended_at
        assert replay.session.duration_seconds == first.session.duration_seconds == 600
        assert replay.session.status is SessionStatus.ABANDONED
    assert (await get_session(tenant.id, session.id)).usage == {"chat_messages": 3}


async def test_exit_usage_adds_exactly_to_what_events_reported(
    start: Starter,
    record_exit: RecordExit,
    storage: MemoryStorage,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    session = await start()
    meters: Usage = {"cost_usd": Decimal("0.1"), "tokens": 10}
    await storage.events.append(
        tenant.id,
        [(0, Event(session.id, 1, "analysis", clock.now(), meters=meters))],
        clock.now(),
        tenant.settings.late_data_window,
    )

    recorded = await record_exit(
        RecordExitCommand(
            tenant.id, session.id, usage={"cost_usd": Decimal("0.2"), "tokens": 5, "photos": 1}
        )
    )

    assert recorded.session.usage == {"cost_usd": Decimal("0.3"), "tokens": 15, "photos": 1}


async def test_an_exit_with_usage_that_cannot_be_metered_closes_nothing(
    start: Starter, record_exit: RecordExit, get_session: GetSession, tenant: Tenant
) -> None:
    session = await start()
    with pytest.raises(InvalidInput) as refused:
        await record_exit(RecordExitCommand(tenant.id, session.id, usage={"tokens": -1}))
    assert refused.value.field == "usage.tokens"
    assert (await get_session(tenant.id, session.id)).is_active


@pytest.mark.parametrize("status", ["timed_out", "active", "done"])
async def test_a_client_may_say_only_how_it_left(
    start: Starter, record_exit: RecordExit, tenant: Tenant, status: str
) -> None:
    session = await start()
    with pytest.raises(InvalidInput) as refused:
        await record_exit(RecordExitCommand(tenant.id, session.id, status=status))
    assert refused.value.field == "status"


@pytest.mark.parametrize("reason", ["reconciled", "room_finished"])
async def test_a_client_may_not_give_the_reason_of_a_servers_guess(
    start: Starter, record_exit: RecordExit, get_session: GetSession, tenant: Tenant, reason: str
) -> None:
    """Those reasons make an end a guess that a later exit replaces: a client's retry would
    move its own end."""
    session = await start()
    with pytest.raises(InvalidInput) as refused:
        await record_exit(RecordExitCommand(tenant.id, session.id, reason=reason))
    assert refused.value.field == "reason"
    assert (await get_session(tenant.id, session.id)).is_active


async def test_an_anonymous_visit_ends_uncharged(
    start: Starter, record_exit: RecordExit, tenant: Tenant
) -> None:
    session = await start(subject_id=None, client_key="tab-42")
    recorded = await record_exit(RecordExitCommand(tenant.id, session.id))
    assert recorded.session.charge_state is ChargeState.NOT_CHARGED and not recorded.session.charge


@pytest.mark.parametrize(
    "session_id",
    ["nope", "", "../etc/passwd", "12345678-1234-1234-1234-12345678901"],
)
async def test_a_malformed_session_id_names_no_session(
    record_heartbeat: RecordHeartbeat,
    record_exit: RecordExit,
    get_session: GetSession,
    tenant: Tenant,
    session_id: str,
) -> None:
    with pytest.raises(NotFound):
        await get_session(tenant.id, session_id)
    with pytest.raises(NotFound):
        await record_heartbeat(RecordHeartbeatCommand(tenant.id, session_id))
    with pytest.raises(NotFound):
        await record_exit(RecordExitCommand(tenant.id, session_id))


async def test_an_unknown_or_another_tenants_session_is_not_found(
    start: Starter,
    record_heartbeat: RecordHeartbeat,
    record_exit: RecordExit,
    get_session: GetSession,
    tenant: Tenant,
    make_tenant: TenantMaker,
) -> None:
    theirs = await start(tenant=await make_tenant("globex"))
    for session_id in (str(uuid.uuid4()), theirs.id):
        with pytest.raises(NotFound):
            await get_session(tenant.id, session_id)
        with pytest.raises(NotFound):
            await record_heartbeat(RecordHeartbeatCommand(tenant.id, session_id))
        with pytest.raises(NotFound):
            await record_exit(RecordExitCommand(tenant.id, session_id))


async def test_a_session_is_found_by_its_id_written_any_way(
    start: Starter, get_session: GetSession, tenant: Tenant
) -> None:
    session = await start()
    assert (await get_session(tenant.id, session.id.upper())).id == session.id
