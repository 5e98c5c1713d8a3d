"""StartSession: a client-supplied id makes the start idempotent; the same id saying something
else is a conflict."""

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from adapters.memory.storage import MemoryStorage
from application.sessions.ports import SessionFilter
from application.sessions.start_session import StartSession, StartSessionCommand
from domain.errors import Conflict, InvalidInput
from domain.session import SessionRequest
from domain.tenants import Tenant
from tests.fakes import FakeClock
from tests.unit.conftest import Starter, TenantMaker

pytestmark = pytest.mark.anyio

VIEWER = {"kind": "webinar", "resource_id": "w1", "subject_id": "u1"}


def command(tenant: Tenant, session_id: str | None, **fields: Any) -> StartSessionCommand:
    return StartSessionCommand(tenant.id, SessionRequest(**{**VIEWER, **fields}), session_id)


async def test_a_start_without_an_id_gets_a_new_one_each_time(start: Starter) -> None:
    first, second = await start(), await start()
    assert first.id != second.id
    assert str(uuid.UUID(first.id)) == first.id


async def test_the_same_id_with_the_same_content_is_a_replay_of_the_stored_session(
    start_session: StartSession, clock: FakeClock, tenant: Tenant, storage: MemoryStorage
) -> None:
    session_id = str(uuid.uuid4())
    first = await start_session(command(tenant, session_id, attributes={"app_version": "2.1"}))
    clock.advance(30)  # the retry comes later, and without the time the first one defaulted

    again = await start_session(command(tenant, session_id, attributes={"app_version": "2.1"}))

    assert first.created and not again.created
    assert again.session == first.session
    assert again.session.started_at == first.session.started_at
    assert len(await storage.sessions.find(tenant.id, SessionFilter(), limit=10)) == 1


@pytest.mark.parametrize(
    "other_id",
    [
        str.upper,
        lambda i: i.replace("-", ""),
        lambda i: "{" + i + "}",
        lambda i: "urn:uuid:" + i,
    ],
    ids=["upper-case", "without hyphens", "in braces", "as a URN"],
)
async def test_a_uuid_written_another_way_is_the_same_id(
    start_session: StartSession, tenant: Tenant, other_id: Callable[[str], str]
) -> None:
    session_id = str(uuid.uuid4())
    first = await start_session(command(tenant, session_id))
    again = await start_session(command(tenant, other_id(session_id)))
    assert not again.created and again.session.id == first.session.id == session_id


async def test_an_upper_case_id_is_stored_in_canonical_lower_case(
    start_session: StartSession, tenant: Tenant
) -> None:
    session_id = str(uuid.uuid4())
    started = await start_session(command(tenant, session_id.upper()))
    assert started.created and started.session.id == session_id


@pytest.mark.parametrize(
    "changed",
    [
        {"kind": "practice"},
        {"resource_id": "w2"},
        {"subject_id": "u2"},
        {"started_at": "an hour earlier"},
        {"attributes": {"app_version": "2.2"}},
    ],
    ids=repr,
)
async def test_the_same_id_with_other_content_is_a_conflict(
    start_session: StartSession, clock: FakeClock, tenant: Tenant, changed: dict[str, Any]
) -> None:
    session_id = str(uuid.uuid4())
    first = await start_session(command(tenant, session_id, attributes={"app_version": "2.1"}))
    if "started_at" in changed:
        changed["started_at"] = first.session.started_at - timedelta(hours=1)

    with pytest.raises(Conflict):
        await start_session(
            command(tenant, session_id, **{"attributes": {"app_version": "2.1"}, **changed})
        )


async def test_a_retry_from_another_address_is_still_a_replay(
    start_session: StartSession, tenant: Tenant
) -> None:
    session_id = str(uuid.uuid4())
    await start_session(command(tenant, session_id, context={"ip": "10.0.0.1"}))
    again = await start_session(command(tenant, session_id, context={"ip": "10.0.0.2"}))
    assert not again.created and again.session.attributes == {"ip": "10.0.0.1"}


@pytest.mark.parametrize(
    "bad_id", ["not-a-uuid", "", "1234", "8c1f3a52-5d0e-4b7e-9f6a-2f1c9d3e4b5a0"]
)
async def test_an_id_that_is_not_a_uuid_is_invalid_input(
    start_session: StartSession, tenant: Tenant, bad_id: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await start_session(command(tenant, bad_id))
    assert refused.value.field == "id"


async def test_two_tenants_ids_never_meet(
    start_session: StartSession, tenant: Tenant, make_tenant: TenantMaker
) -> None:
    other = await make_tenant("globex")
    session_id = str(uuid.uuid4())
    await start_session(command(tenant, session_id))
    theirs = await start_session(command(other, session_id, resource_id="elsewhere"))
    assert theirs.created and theirs.session.tenant_id == other.id


async def test_a_start_more_than_5_minutes_ahead_of_the_clock_is_refused(
    start: Starter, clock: FakeClock
) -> None:
    assert (await start(started_at=clock.now() + timedelta(minutes=5))).started_at > clock.now()
    with pytest.raises(InvalidInput) as refused:
        await start(started_at=clock.now() + timedelta(minutes=5, seconds=1))
    assert refused.value.field == "started_at"


async def test_a_start_time_without_an_offset_is_refused(start: Starter) -> None:
    with pytest.raises(InvalidInput) as refused:
        await start(started_at=datetime(2026, 11, 24, 11, 0))
    assert refused.value.field == "started_at"


async def test_an_anonymous_start_needs_a_browser_key(start: Starter) -> None:
    with pytest.raises(InvalidInput) as refused:
        await start(subject_id=None)
    assert refused.value.field == "client_key"
    assert (await start(subject_id=None, client_key="tab-42")).client_key == "tab-42"


async def test_a_start_defaults_to_now(start: Starter, clock: FakeClock) -> None:
    session = await start()
    assert session.started_at == session.last_seen_at == clock.now()
