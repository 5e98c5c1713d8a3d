"""ListSessions: newest first, filtered, one page at a time with opaque cursors."""

from datetime import timedelta
from typing import Any

import pytest

from application.pagination import DEFAULT_LIMIT, MAX_LIMIT, encode_cursor
from application.sessions.list_sessions import ListSessions, ListSessionsQuery
from application.sessions.ports import SessionFilter
from application.sessions.record_exit import RecordExit, RecordExitCommand
from domain.errors import InvalidInput
from domain.session import SessionStatus
from domain.tenants import Tenant
from entrypoints.container.use_cases import UseCaseContainer
from tests.fakes import FakeClock
from tests.unit.conftest import Starter, TenantMaker

pytestmark = pytest.mark.anyio


@pytest.fixture
def list_sessions(use_cases: UseCaseContainer) -> ListSessions:
    return use_cases.list_sessions()


async def walk(list_sessions: ListSessions, tenant: Tenant, limit: int, **where: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = await list_sessions(
            ListSessionsQuery(tenant.id, SessionFilter(**where), limit=limit, cursor=cursor)
        )
        seen += [s.id for s in page.items]
        if (cursor := page.next_cursor) is None:
            return seen


async def test_a_cursor_walk_visits_every_session_once_newest_first(
    start: Starter, list_sessions: ListSessions, clock: FakeClock, tenant: Tenant
) -> None:
    made = []
    for _ in range(7):
        made.append((await start()).id)
        clock.advance(1)

    assert await walk(list_sessions, tenant, limit=3) == list(reversed(made))


async def test_sessions_that_started_at_the_same_instant_are_neither_lost_nor_repeated(
    start: Starter, list_sessions: ListSessions, tenant: Tenant
) -> None:
    made = {(await start()).id for _ in range(5)}
    seen = await walk(list_sessions, tenant, limit=2)
    assert len(seen) == 5 and set(seen) == made


async def test_a_full_last_page_says_there_is_no_more(
    start: Starter, list_sessions: ListSessions, tenant: Tenant
) -> None:
    for _ in range(3):
        await start()
    page = await list_sessions(ListSessionsQuery(tenant.id, SessionFilter(), limit=3))
    assert len(page.items) == 3 and page.next_cursor is None


async def test_listing_filters_by_what_the_caller_names(
    start: Starter,
    record_exit: RecordExit,
    list_sessions: ListSessions,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    early = await start(kind="practice")
    clock.advance(3600)
    webinar = await start(resource_id="w2", subject_id="u2")
    ended = await start()
    await record_exit(RecordExitCommand(tenant.id, ended.id))

    async def ids(**where: Any) -> set[str]:
        return set(await walk(list_sessions, tenant, limit=10, **where))

    assert await ids(kind="practice") == {early.id}
    assert await ids(resource_id="w2") == {webinar.id}
    assert await ids(subject_id="u2") == {webinar.id}
    assert await ids(status=SessionStatus.COMPLETED) == {ended.id}
    assert await ids(started_from=clock.now()) == {webinar.id, ended.id}
    assert await ids(started_to=clock.now()) == {early.id}


async def test_another_tenants_sessions_are_never_listed(
    start: Starter, list_sessions: ListSessions, make_tenant: TenantMaker, tenant: Tenant
) -> None:
    await start(tenant=await make_tenant("globex"))
    assert await walk(list_sessions, tenant, limit=10) == []


async def test_the_page_size_defaults_to_50_and_is_bounded(
    start: Starter, list_sessions: ListSessions, tenant: Tenant
) -> None:
    for _ in range(DEFAULT_LIMIT + 1):
        await start()
    assert (
        len((await list_sessions(ListSessionsQuery(tenant.id, SessionFilter()))).items)
        == DEFAULT_LIMIT
    )
    assert (
        len(
            (
                await list_sessions(ListSessionsQuery(tenant.id, SessionFilter(), limit=MAX_LIMIT))
            ).items
        )
        == 51
    )
    for limit in (0, -1, MAX_LIMIT + 1):
        with pytest.raises(InvalidInput) as refused:
            await list_sessions(ListSessionsQuery(tenant.id, SessionFilter(), limit=limit))
        assert refused.value.field == "limit"


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        "WzFd",  # [1]: a cursor of another listing
        encode_cursor(["yesterday", "x"]),
        encode_cursor([1, 2]),
        "eyJzdGFydGVkX2F0IjogIjIwMjYtMTEtMjRUMTI6MDA6MDArMDA6MDAifQ",  # an object, not a list,
    ],
)
async def test_a_cursor_the_service_did_not_give_is_invalid(
    start: Starter, list_sessions: ListSessions, tenant: Tenant, cursor: str
) -> None:
    await start()
    with pytest.raises(InvalidInput) as refused:
        await list_sessions(ListSessionsQuery(tenant.id, SessionFilter(), cursor=cursor))
    assert refused.value.field == "cursor"


async def test_a_cursor_with_a_timestamp_without_an_offset_is_invalid(
    start: Starter, list_sessions: ListSessions, tenant: Tenant
) -> None:
    session = await start()
    naive = (session.started_at + timedelta(seconds=1)).replace(tzinfo=None).isoformat()
    with pytest.raises(InvalidInput) as refused:
        await list_sessions(
            ListSessionsQuery(tenant.id, SessionFilter(), cursor=encode_cursor([naive, "x"]))
        )
    assert refused.value.field == "cursor"
