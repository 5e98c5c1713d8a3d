"""IngestEvents, ListEvents and EventDistribution: each (session, number) counts once, losses
show as gaps, and one bad event does not sink its batch."""

import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from adapters.memory.storage import MemoryStorage
from application.events.event_distribution import EventDistribution, EventDistributionQuery
from application.events.ingest_events import IngestEventsCommand
from application.events.list_events import ListEvents, ListEventsQuery
from application.pagination import encode_cursor
from application.sessions.get_session import GetSession
from application.sessions.record_exit import RecordExit, RecordExitCommand
from domain.errors import InvalidInput, NotFound, PayloadTooLarge
from domain.events import BatchOutcome, Event, EventRejection
from domain.session import Session
from domain.tenants import Tenant
from entrypoints.container.use_cases import UseCaseContainer
from tests.fakes import FakeClock
from tests.unit.conftest import Starter, TenantMaker

pytestmark = pytest.mark.anyio

Ingest = Callable[..., Awaitable[BatchOutcome]]
MakeEvent = Callable[..., Event]


@pytest.fixture
def ingest(use_cases: UseCaseContainer, tenant: Tenant) -> Ingest:
    use_case = use_cases.ingest_events()

    async def ingest(*events: Event | EventRejection, to: Tenant = tenant) -> BatchOutcome:
        return await use_case(IngestEventsCommand(to, list(events)))

    return ingest


@pytest.fixture
async def session(start: Starter) -> Session:
    return await start(kind="kiosk", resource_id="booth-3", subject_id="guest")


@pytest.fixture
def event(session: Session, clock: FakeClock) -> MakeEvent:
    def event(sequence_no: int, **fields: Any) -> Event:
        fields = {"session_id": session.id, "type": "photo", "at": clock.now(), **fields}
        return Event(sequence_no=sequence_no, **fields)

    return event


def outcome(result: BatchOutcome) -> tuple[int, int, list[tuple[int, str]]]:
    return (
        result.inserted,
        result.duplicates,
        [(r.index, r.error) for r in result.rejections],
    )


async def test_a_batch_is_stored_and_its_meters_added_to_the_session(
    ingest: Ingest, event: MakeEvent, session: Session, get_session: GetSession, tenant: Tenant
) -> None:
    result = await ingest(
        *(event(n, meters={"photos": 1, "cost_usd": Decimal("0.1")}) for n in (1, 2, 3))
    )

    assert outcome(result) == (3, 0, [])
    stored = await get_session(tenant.id, session.id)
    assert stored.event_count == 3 and stored.event_gaps == []
    assert stored.usage == {"photos": 3, "cost_usd": Decimal("0.3")}


async def test_a_retried_batch_inserts_nothing_twice(
    ingest: Ingest, event: MakeEvent, session: Session, get_session: GetSession, tenant: Tenant
) -> None:
    batch = [event(n, meters={"photos": 1}) for n in (1, 2, 3)]
    await ingest(*batch)

    retry = await ingest(*batch, event(4, meters={"photos": 1}))

    assert outcome(retry) == (1, 3, [])
    stored = await get_session(tenant.id, session.id)
    assert (stored.event_count, stored.usage) == (4, {"photos": 4})


async def test_a_number_repeated_within_one_batch_is_a_duplicate(
    ingest: Ingest, event: MakeEvent, session: Session, get_session: GetSession, tenant: Tenant
) -> None:
    result = await ingest(event(1, meters={"photos": 1}), event(1, meters={"photos": 1}))
    assert outcome(result) == (1, 1, [])
    assert (await get_session(tenant.id, session.id)).usage == {"photos": 1}


async def test_events_of_unknown_ended_or_other_tenants_sessions_fail_by_index(
    ingest: Ingest,
    event: MakeEvent,
    start: Starter,
    record_exit: RecordExit,
    make_tenant: TenantMaker,
    clock: FakeClock,
    tenant: Tenant,
) -> None:
    ended = await start()
    await record_exit(RecordExitCommand(tenant.id, ended.id))
    theirs = await start(tenant=await make_tenant("globex"))
    clock.advance(1)

    result = await ingest(
        event(1),
        Event(str(uuid.uuid4()), 1, "tap", clock.now()),
        Event(ended.id, 1, "tap", clock.now()),  # after the client's own end
        EventRejection(3, "validation_error: at: required"),
        Event(theirs.id, 1, "tap", clock.now()),
        event(2),
    )

    assert outcome(result) == (
        2,
        0,
        [
            (1, "session_not_found"),
            (2, "session_ended"),
            (3, "validation_error: at: required"),
            (4, "session_not_found"),
        ],
    )
    assert result.failed == 4


async def test_a_retry_that_arrives_after_the_exit_is_still_a_duplicate_not_an_error(
    ingest: Ingest,
    event: MakeEvent,
    session: Session,
    record_exit: RecordExit,
    tenant: Tenant,
    clock: FakeClock,
) -> None:
    await ingest(event(1), event(2))
    await record_exit(RecordExitCommand(tenant.id, session.id))
    clock.advance(1)

    retry = await ingest(event(1), event(2), event(3))  # 3 is dated after the end

    assert outcome(retry) == (0, 2, [(2, "session_ended")])


async def test_a_batch_over_the_tenants_limit_is_refused_whole(
    ingest: Ingest,
    start: Starter,
    make_tenant: TenantMaker,
    get_session: GetSession,
    clock: FakeClock,
) -> None:
    small = await make_tenant("small", max_batch_events=2)
    session = await start(tenant=small)
    batch = [Event(session.id, n, "tap", clock.now(), meters={"photos": 1}) for n in (1, 2, 3)]

    with pytest.raises(PayloadTooLarge):
        await ingest(*batch, to=small)

    stored = await get_session(small.id, session.id)
    assert (stored.event_count, stored.usage) == (0, {})
    assert outcome(await ingest(*batch[:2], to=small)) == (2, 0, [])


async def test_the_default_limit_is_100_events(ingest: Ingest, event: MakeEvent) -> None:
    assert (await ingest(*(event(n) for n in range(1, 101)))).inserted == 100
    with pytest.raises(PayloadTooLarge):
        await ingest(*(event(n) for n in range(1, 102)))


@pytest.mark.parametrize(
    ("numbers", "gaps"),
    [([1, 2, 5], [(3, 4)]), ([3], [(1, 2)]), ([1, 2, 3, 6, 7], [(4, 5)]), ([2, 1], [])],
)
async def test_lost_events_show_as_gaps_on_the_session(
    ingest: Ingest,
    event: MakeEvent,
    session: Session,
    get_session: GetSession,
    tenant: Tenant,
    numbers: list[int],
    gaps: list[tuple[int, int]],
) -> None:
    await ingest(*(event(n) for n in numbers))
    assert (await get_session(tenant.id, session.id)).event_gaps == gaps


async def test_a_late_event_fills_its_gap(
    ingest: Ingest, event: MakeEvent, session: Session, get_session: GetSession, tenant: Tenant
) -> None:
    await ingest(event(1), event(3))
    await ingest(event(2))
    assert (await get_session(tenant.id, session.id)).event_gaps == []


@pytest.fixture
def list_events(use_cases: UseCaseContainer) -> ListEvents:
    return use_cases.list_events()


@pytest.fixture
def event_distribution(use_cases: UseCaseContainer) -> EventDistribution:
    return use_cases.event_distribution()


async def test_events_are_listed_in_sequence_order_page_by_page(
    ingest: Ingest, event: MakeEvent, session: Session, list_events: ListEvents, tenant: Tenant
) -> None:
    await ingest(*(event(n) for n in (5, 1, 4, 2, 3)))

    seen, cursor = [], None
    while True:
        page = await list_events(ListEventsQuery(tenant.id, session.id, limit=2, cursor=cursor))
        seen += [e.sequence_no for e in page.items]
        if (cursor := page.next_cursor) is None:
            break

    assert seen == [1, 2, 3, 4, 5]


async def test_events_can_be_listed_by_type_and_label(
    ingest: Ingest, event: MakeEvent, session: Session, list_events: ListEvents, tenant: Tenant
) -> None:
    await ingest(
        event(1, type="answer", label="red"),
        event(2, type="answer", label="green"),
        event(3, type="screen_enter"),
    )
    reds = await list_events(ListEventsQuery(tenant.id, session.id, type="answer", label="red"))
    assert [e.sequence_no for e in reds.items] == [1]


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        encode_cursor(["1"]),
        encode_cursor([1, 2]),
        "e30",  # {}: not a list
    ],
)
async def test_a_cursor_the_service_did_not_give_is_invalid(
    session: Session, list_events: ListEvents, tenant: Tenant, cursor: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await list_events(ListEventsQuery(tenant.id, session.id, cursor=cursor))
    assert refused.value.field == "cursor"


@pytest.mark.parametrize("position", [2**70, True], ids=["2**70", "True"])
async def test_a_cursor_past_any_sequence_number_is_invalid(
    session: Session, list_events: ListEvents, tenant: Tenant, position: int
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await list_events(ListEventsQuery(tenant.id, session.id, cursor=encode_cursor([position])))
    assert refused.value.field == "cursor"


async def test_events_of_a_session_that_is_not_there_are_not_found(
    list_events: ListEvents, event_distribution: EventDistribution, tenant: Tenant
) -> None:
    with pytest.raises(NotFound):
        await list_events(ListEventsQuery(tenant.id, str(uuid.uuid4())))
    with pytest.raises(NotFound):
        await event_distribution(EventDistributionQuery(tenant.id, "nope", "label"))


async def test_answers_are_counted_by_label_with_their_percentages(
    ingest: Ingest,
    event: MakeEvent,
    session: Session,
    event_distribution: EventDistribution,
    tenant: Tenant,
) -> None:
    labels = ["red"] * 1 + ["yellow"] * 4 + ["green"] * 15
    await ingest(*(event(n, type="answer", label=label) for n, label in enumerate(labels, 1)))
    await ingest(event(21, type="screen_enter"))  # no label: not counted

    distribution = await event_distribution(EventDistributionQuery(tenant.id, session.id, "label"))

    assert distribution.total == 20
    assert distribution.counts == {"red": 1, "yellow": 4, "green": 15}
    assert distribution.percentages == {"red": 5.0, "yellow": 20.0, "green": 75.0}


async def test_a_distribution_is_by_label_type_or_category_only(
    session: Session, event_distribution: EventDistribution, tenant: Tenant
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await event_distribution(EventDistributionQuery(tenant.id, session.id, "data"))
    assert refused.value.field == "field"


async def test_late_events_send_the_next_rollup_run_back_to_their_hour(
    ingest: Ingest,
    event: MakeEvent,
    session: Session,
    record_exit: RecordExit,
    storage: MemoryStorage,
    tenant: Tenant,
    clock: FakeClock,
) -> None:
    started = clock.now()
    await record_exit(RecordExitCommand(tenant.id, session.id))
    clock.advance(3 * 3600)
    leases = storage.rollup_leases
    assert await leases.acquire(tenant.id, "run", clock.now(), clock.now()) is not None
    await leases.release(tenant.id, "run", clock.now(), tenant.settings.rollup_cut)

    await ingest(event(1, at=started))  # a buffer flushed three hours after the exit
    await ingest(event(2))  # now: the next run covers it anyway

    lease = await leases.acquire(tenant.id, "next", clock.now(), clock.now())
    assert lease is not None and lease.resume_from == started.replace(minute=0, second=0)
