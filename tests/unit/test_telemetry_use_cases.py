"""The telemetry use cases on the in-memory store: a settlement move that loses its races, a
refund of a sale sent in the same batch, and what a batch of records says of each."""

from collections.abc import Sequence
from datetime import timedelta

import pytest
from dependency_injector import providers

from adapters.memory.storage import MemoryStorage
from application.telemetry.move_settlement import ATTEMPTS, MoveSettlementCommand
from application.telemetry.ports import SaleBook
from application.telemetry.record_metrics import RecordMetricsCommand
from application.telemetry.record_sales import RecordSalesCommand
from domain.errors import Conflict, InvalidInput
from domain.sales import Sale, Settlement, SettlementMoveRefused, SettlementState
from domain.session import Session, SessionRequest
from domain.tenants import Tenant
from entrypoints.container import Container
from entrypoints.container.use_cases import UseCaseContainer
from tests.contract.telemetry_builders import a_metric, a_refund, a_sale
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio


class OvertakenSaleBook:
    """The store's sale book, where another request moves the sale first (to each of
    `overtaking` in turn, a move each) between the use case's read and its move."""

    def __init__(self, sales: SaleBook, *overtaking: Settlement) -> None:
        self._sales = sales
        self._overtaking = list(overtaking)
        self.attempts = 0

    async def get_many(self, tenant_id: str, sale_ids: Sequence[str]) -> dict[str, Sale]:
        return await self._sales.get_many(tenant_id, sale_ids)

    async def move_settlement(
        self, tenant_id: str, sale_id: str, expected: SettlementState, settlement: Settlement
    ) -> bool:
        self.attempts += 1
        if self._overtaking:
            first = self._overtaking.pop(0)
            await self._sales.move_settlement(tenant_id, sale_id, expected, first)
        return await self._sales.move_settlement(tenant_id, sale_id, expected, settlement)


@pytest.fixture
async def sale_session(storage: MemoryStorage, tenant: Tenant, clock: FakeClock) -> Session:
    request = SessionRequest("kiosk", "kiosk-1", client_key="k", started_at=clock.now())
    session = Session.start(tenant.id, "0f0e0d0c-0b0a-4909-8807-060504030201", request, clock.now())
    await storage.sessions.add(session)
    await storage.sales.add(tenant.id, [a_sale("s1", session.id, occurred_at=clock.now())])
    return session


@pytest.mark.parametrize(
    ("overtaken_by", "asked", "outcome"),
    [
        (SettlementState.DISPUTED, SettlementState.SETTLED, SettlementState.SETTLED),
        (SettlementState.SETTLED, SettlementState.DISPUTED, None),  # settled is final
    ],
)
async def test_a_move_that_loses_its_race_is_judged_against_the_winners_state(
    container: Container,
    storage: MemoryStorage,
    tenant: Tenant,
    sale_session: Session,
    overtaken_by: SettlementState,
    asked: SettlementState,
    outcome: SettlementState | None,
) -> None:
    book = OvertakenSaleBook(storage.sales, Settlement(overtaken_by))
    container.storage.sales.override(providers.Object(book))
    move = container.use_cases().move_settlement()
    command = MoveSettlementCommand(tenant.id, "s1", Settlement(asked))

    if outcome is None:
        with pytest.raises(SettlementMoveRefused) as refused:
            await move(command)
        assert refused.value.current is overtaken_by
    else:
        assert (await move(command)).settlement.state is outcome
        assert book.attempts == 2


async def test_a_move_that_loses_every_race_is_a_conflict_to_send_again(
    container: Container, storage: MemoryStorage, tenant: Tenant, sale_session: Session
) -> None:
    """Found by a hostile review: after its last lost race, the move answered the sale as it
    found it, as if done (HTTP: 200, still disputed, to a request for settled)."""
    flips = [Settlement(SettlementState.DISPUTED), Settlement(SettlementState.PENDING)] * 3
    book = OvertakenSaleBook(storage.sales, *flips)
    container.storage.sales.override(providers.Object(book))
    move = container.use_cases().move_settlement()

    with pytest.raises(Conflict, match="send the move again"):
        await move(MoveSettlementCommand(tenant.id, "s1", Settlement(SettlementState.SETTLED)))
    assert book.attempts == ATTEMPTS


async def test_a_refund_may_name_a_sale_sent_earlier_in_its_batch(
    use_cases: UseCaseContainer, tenant: Tenant, sale_session: Session, clock: FakeClock
) -> None:
    sale = a_sale("s2", sale_session.id, occurred_at=clock.now())
    refund = a_refund("r2", sale, "5000", minutes=0)

    recorded = await use_cases.record_sales()(
        RecordSalesCommand(tenant.id, [sale, refund, a_refund("r3", refund, "1", minutes=0)])
    )

    assert [i.created for i in recorded.items] == [True, True, False]
    assert [r.error for r in recorded.rejections] == [
        "validation_error: refund_of: names a refunded sale; only completed ones are refunded"
    ]


async def test_a_refund_of_a_sale_its_batch_refused_is_refused_too(
    use_cases: UseCaseContainer, tenant: Tenant, sale_session: Session, clock: FakeClock
) -> None:
    """Found by a hostile review: the sale, dated beyond the clock's 5 minutes, was refused,
    and its refund stored, naming a sale nobody has."""
    ahead = a_sale("s2", sale_session.id, occurred_at=clock.now() + timedelta(minutes=30))
    refund = a_refund("r2", ahead, "5000", minutes=0)

    recorded = await use_cases.record_sales()(RecordSalesCommand(tenant.id, [ahead, refund]))

    assert [r.error.split(":")[:2] for r in recorded.rejections] == [
        ["validation_error", " occurred_at"],
        ["validation_error", " refund_of"],
    ]


async def test_a_refund_is_judged_against_the_first_copy_of_its_sale_in_the_batch(
    use_cases: UseCaseContainer, tenant: Tenant, sale_session: Session, clock: FakeClock
) -> None:
    """Found by a hostile review: of two copies of one sale id in a batch (the second a
    conflict), the refund was judged against the last, the one not stored: a USD refund of
    a KRW sale was taken."""
    won = a_sale("s2", sale_session.id, occurred_at=clock.now(), currency="KRW")
    dollars = a_sale("s2", sale_session.id, occurred_at=clock.now(), currency="USD")

    recorded = await use_cases.record_sales()(
        RecordSalesCommand(tenant.id, [won, dollars, a_refund("r2", dollars, "15", minutes=0)])
    )

    assert [i.created for i in recorded.items] == [True, False, False]
    assert [r.error for r in recorded.rejections] == [
        "conflict: the id is taken by a record with other content",
        "validation_error: currency: must be KRW, the refunded sale's",
    ]


async def test_a_batch_says_what_became_of_each_record_in_order(
    use_cases: UseCaseContainer, tenant: Tenant, clock: FakeClock
) -> None:
    now = clock.now()
    command = RecordMetricsCommand(
        tenant.id,
        [
            a_metric("a", 10.0, started_at=now),
            InvalidInput("duration_ms", "must be a number of milliseconds"),
            a_metric("a", 10.0, started_at=now),
            a_metric("a", 11.0, started_at=now),
            a_metric("b", 10.0, session_id="0f0e0d0c-0b0a-4909-8807-0605040302ff", started_at=now),
        ],
    )

    recorded = await use_cases.record_metrics()(command)

    assert (recorded.inserted, recorded.duplicates) == (1, 1)
    assert [(r.index, r.error.split(":")[0]) for r in recorded.rejections] == [
        (1, "validation_error"),
        (3, "conflict"),
        (4, "validation_error"),
    ]
