"""Round trips to MongoDB of the hot paths, counted with pymongo's command monitoring on the real
container and use cases over the MongoDB test server (issue 15).

Every command the client sends is one round trip: the tests list them by name and collection
(`find sessions`, `bulkWrite`, ...) after a warm-up call, so that what the use cases cache per
process (a tenant's rates and plans) is already there, and assert the list itself, so a new
command shows up here with its name.
"""

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest.mock import patch

import pytest
from pymongo import AsyncMongoClient, monitoring

from adapters.mongodb.documents import Document
from adapters.mongodb.storage import MongoStorage
from application.events.ingest_events import IngestEventsCommand
from application.sessions.record_exit import RecordExitCommand
from application.sessions.start_session import StartSessionCommand
from domain.credits import Rate, Rounding
from domain.events import Event, EventRejection
from domain.plans import Plan, PlanLimits
from domain.session import SessionRequest
from domain.tenants import Access, Role, Tenant, TenantSettings
from domain.usage import Usage
from entrypoints.container import Container
from tests.conftest import MongoDatabases
from tests.contract.builders import wired
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
INGEST = Access(role=Role.INGEST)
BATCH = 100


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Commands(monitoring.CommandListener):
    """The commands the client sent, as `name collection` (`bulkWrite` spans collections)."""

    sent: list[str] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.sent.append(
            f"{event.command_name} {target}" if isinstance(target, str) else event.command_name
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self) -> list[str]:
        """What was sent since the last call."""
        sent, self.sent = self.sent, []
        return sent


@pytest.fixture
def commands() -> Commands:
    return Commands()


@pytest.fixture
def database(mongodb_databases: MongoDatabases) -> Iterator[str]:
    with mongodb_databases.fresh() as url:
        yield url


def watched_storage(url: str, commands: Commands) -> MongoStorage:
    """A MongoStorage on `url` whose client tells `commands` of every command it sends."""

    def listened(url: str, wait_seconds: float | None = None) -> AsyncMongoClient[Document]:
        return AsyncMongoClient(url, tz_aware=True, connect=False, event_listeners=[commands])

    with patch("adapters.mongodb.storage.connect", listened):
        return MongoStorage(url)


@pytest.fixture
async def mongodb(database: str, commands: Commands) -> AsyncIterator[MongoStorage]:
    storage = watched_storage(database, commands)
    yield storage
    await storage.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def container(mongodb: MongoStorage, clock: FakeClock) -> Container:
    return wired(mongodb, clock)


@pytest.fixture
async def tenant(mongodb: MongoStorage) -> Tenant:
    # A tenant with a rate and a plan, so that the caches of both have something to hold.
    tenant = Tenant("acme", "acme", NOW, TenantSettings())
    await mongodb.tenants.add(tenant)
    await mongodb.rates.put(tenant.id, Rate("counseling", 2, Rounding.CEIL, {}))
    limits = PlanLimits(sessions_per_resource=3, session_kinds=frozenset({"quiz"}))
    await mongodb.plans.put(tenant.id, Plan("trial", default=True, limits=limits))
    return tenant


async def start(
    container: Container,
    tenant: Tenant,
    kind: str = "webinar",
    subject_id: str | None = None,
    client_key: str | None = "browser-1",
    session_id: str | None = None,
) -> str:
    request = SessionRequest(kind, "webinar-1", subject_id=subject_id, client_key=client_key)
    command = StartSessionCommand(tenant.id, request, session_id, tenant.settings)
    started = await container.use_cases().start_session()(command)
    return started.session.id


def events(session_id: str, numbers: range, at: datetime = NOW) -> list[Event]:
    meters: Usage = {"seconds": 1, "cost_usd": Decimal("0.001")}
    return [Event(session_id, n, "tick", at, meters=meters) for n in numbers]


async def ingest(
    container: Container, tenant: Tenant, batch: list[Event]
) -> tuple[int, int, list[EventRejection]]:
    outcome = await container.use_cases().ingest_events()(
        IngestEventsCommand(tenant, batch, INGEST)
    )
    return outcome.inserted, outcome.duplicates, outcome.rejections


async def test_a_batch_into_one_active_session_is_two_round_trips(
    container: Container, tenant: Tenant, commands: Commands
) -> None:
    """A batch of 100 metered events from an ingest key into one active session, after a
    warm-up batch (which read the tenant's rates and plans into the per-process caches, to
    judge what the ingest key may meter):

    1. `find sessions`: the batch's sessions as stored. Nothing else can say which events
       their sessions take (Session.refusal, the meter limit) and what counting them changes
       (Session.record_events), nor what the ingest key may write into them (`admits`).
    2. `bulkWrite`: one ordered command over both collections: insert the new events (marked
       with the batch's token), count them into the session by an update guarded on the
       session as read in 1 (which records the token), remove the marks and the token. A
       duplicate number or a session changed since 1 stops it there, and the append goes on
       the long way (the next test).
    """
    session_id = await start(container, tenant)
    assert await ingest(container, tenant, events(session_id, range(1, 2))) == (1, 0, [])
    commands.take()

    outcome = await ingest(container, tenant, events(session_id, range(2, 2 + BATCH)))

    assert outcome == (BATCH, 0, [])
    assert commands.take() == ["find sessions", "bulkWrite"]
    stored = await container.use_cases().get_session()(tenant.id, session_id)
    assert stored.usage == {"seconds": 1 + BATCH, "cost_usd": Decimal("0.101")}
    assert stored.event_count == 1 + BATCH


async def test_a_retried_batch_is_all_duplicates_in_four_round_trips(
    container: Container, tenant: Tenant, commands: Commands
) -> None:
    """The same batch again (a client's retry after a lost answer): all duplicates, nothing
    counted twice.

    1. `find sessions`, as for any batch.
    2. `bulkWrite`: stops at the first event, a duplicate.
    3. `insert events`: the rest, unordered, so that the server names every duplicate (and
       stores what is new, when only part of the batch was stored before).
    4. `find events`: marks of a batch whose append died before counting it, older than
       event_counting.STALE_AFTER, among the sessions of the duplicates: a retry is how such
       a batch gets counted (finish_stale_batches). There are none here.

    A batch with some numbers new and some stored before costs more (the next test).
    """
    session_id = await start(container, tenant)
    batch = events(session_id, range(1, 1 + BATCH))
    await ingest(container, tenant, batch)
    commands.take()

    outcome = await ingest(container, tenant, batch)

    assert outcome == (0, BATCH, [])
    assert commands.take() == ["find sessions", "bulkWrite", "insert events", "find events"]
    stored = await container.use_cases().get_session()(tenant.id, session_id)
    assert stored.usage == {"seconds": BATCH, "cost_usd": Decimal("0.1")}
    assert stored.event_count == BATCH


async def test_a_batch_half_stored_before_takes_the_long_way(
    container: Container, tenant: Tenant, commands: Commands
) -> None:
    """A batch whose first half was stored before (a retry after a partial failure, or a
    client resending what it was not sure of): the new half is stored and counted once.

    1-3. `find sessions`, `bulkWrite` (stopped at the first event), `insert events` (the rest:
       the new half is stored, marked, and the server names the duplicates), as for a retry;
    4-8. count_batch, for what the command did not count: `find sessions` (the session as it is
       now), `aggregate events` (are the marks still there? else another caller counted them),
       `update sessions` (the guarded count, which records the token), `update events` (remove
       the marks), `update sessions` (remove the token);
    9. `find events`: the marks of a dead append among the duplicates' sessions, as for a retry.
    """
    session_id = await start(container, tenant)
    await ingest(container, tenant, events(session_id, range(1, 1 + BATCH // 2)))
    commands.take()

    outcome = await ingest(container, tenant, events(session_id, range(1, 1 + BATCH)))

    assert outcome == (BATCH // 2, BATCH // 2, [])
    assert commands.take() == [
        "find sessions",
        "bulkWrite",
        "insert events",
        "find sessions",
        "aggregate events",
        "update sessions",
        "update events",
        "update sessions",
        "find events",
    ]
    stored = await container.use_cases().get_session()(tenant.id, session_id)
    assert stored.usage == {"seconds": BATCH, "cost_usd": Decimal("0.1")}
    assert stored.event_count == BATCH


async def test_refused_events_cost_one_more_round_trip(
    container: Container, tenant: Tenant, commands: Commands
) -> None:
    """Events a session refuses (here: dated after its client's exit) are errors unless they
    were stored before, which only the event log can say: one more `find events`, only for a
    batch with refused events."""
    session_id = await start(container, tenant)
    await ingest(container, tenant, events(session_id, range(1, 3)))
    await container.use_cases().record_exit()(
        RecordExitCommand(tenant.id, session_id, at=NOW + timedelta(seconds=2))
    )
    commands.take()

    after_the_exit = NOW + timedelta(seconds=3)
    outcome = await ingest(container, tenant, events(session_id, range(1, 4), after_the_exit))

    inserted, duplicates, rejections = outcome
    assert (inserted, duplicates, [r.error for r in rejections]) == (0, 2, ["session_ended"])
    assert commands.take() == ["find sessions", "find events"]


async def test_a_start_is_one_round_trip_and_one_under_a_trial_limit_is_four(
    container: Container, tenant: Tenant, commands: Commands
) -> None:
    """Starting a session, after a warm-up start (rates and plans now cached):

    - a session with an id the service makes, of a kind no plan limits: `insert sessions`,
      whose unique index also keeps the id once;
    - a session whose client supplies its id, for a subject, of a kind the default plan limits
      (3 per resource): `find sessions` (is this id a replay of an earlier start? then it is
      answered as stored), `find subscriptions` (the subject's own plan, if any, overrides the
      tenant's default), `aggregate sessions` (how many sessions of the limited kinds the
      subject started on the resource) and `insert sessions` into the next numbered slot,
      whose unique index refuses a concurrent start that counted the same; so counting and
      inserting need no transaction.
    """
    await start(container, tenant, "quiz", subject_id="user-0", client_key=None)
    commands.take()

    await start(container, tenant)
    assert commands.take() == ["insert sessions"]

    await start(
        container,
        tenant,
        "quiz",
        subject_id="user-1",
        client_key=None,
        session_id="0f0e0d0c-0b0a-4908-8706-050403020100",
    )
    assert commands.take() == [
        "find sessions",
        "find subscriptions",
        "aggregate sessions",
        "insert sessions",
    ]


async def test_an_exit_is_two_round_trips(
    container: Container, tenant: Tenant, commands: Commands
) -> None:
    """An exit of a session of a kind without a rate (nothing to charge), after a warm-up exit:

    1. `aggregate sessions`: the session as stored (Session.close decides what the exit does
       from it, and the write check judges its kind and resource), with the events of any
       batch whose append died before counting them, which belong in the usage this exit
       prices (a `$lookup` of marks older than STALE_AFTER; none here).
    2. `findAndModify sessions`: the close, guarded on the session as read (of concurrent
       exits one matches), returning the session as closed, with what any batch counted in
       meanwhile: the charge prices exactly that.

    A rated session then costs the settlement's own commands (CreditLedger.settle).
    """
    warm_up = await start(container, tenant)
    await container.use_cases().record_exit()(RecordExitCommand(tenant.id, warm_up))
    session_id = await start(container, tenant)
    commands.take()

    exited = await container.use_cases().record_exit()(RecordExitCommand(tenant.id, session_id))

    assert exited.closed
    assert commands.take() == ["aggregate sessions", "findAndModify sessions"]
