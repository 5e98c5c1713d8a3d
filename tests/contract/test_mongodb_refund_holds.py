"""MongoDB: a refund is stored only within what is left of its sale, without transactions.

MongoSaleBook holds what new refunds give back on their sale (in a write guarded on the sale's
turn) before it stores them, so that a concurrent add counts them whether they are stored yet or
not. An add that dies between the two leaves its hold: it counts for HOLD_DEAD_AFTER, during
which a retry of its refund is taken on it; then it is dropped, and the refund, sent again, is
judged on what is left then."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from adapters.mongodb import telemetry
from adapters.mongodb.storage import MongoStorage
from domain.sales import Sale
from domain.tenants import Tenant
from tests.contract.builders import add_tenant, at, stored_session
from tests.contract.telemetry_builders import a_refund, a_sale, amounts, record_sales, refused_on
from tests.fakes import FakeClock

pytestmark = pytest.mark.anyio
on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)

CLOCK = FakeClock(at(60 * 24))


class Died(Exception):
    """The process stopped here."""


@pytest.fixture
async def tenant(mongodb: MongoStorage) -> Tenant:
    return await add_tenant(mongodb)


@pytest.fixture
async def sale(mongodb: MongoStorage, tenant: Tenant) -> Sale:
    """A sale of 20000 KRW, stored."""
    session = await stored_session(mongodb, tenant)
    sold = a_sale("s1", session.id, amounts=amounts("20000"))
    await refunds_of(mongodb, tenant, sold)
    return sold


async def refunds_of(storage: MongoStorage, tenant: Tenant, *sales: Sale) -> list[str | None]:
    """Record the sales in one batch: per item, the field a refusal names or None if taken."""
    return refused_on(await record_sales(storage, tenant, *sales))


def stopped_before_its_insert(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[asyncio.Event, asyncio.Event]:
    """The next add of sales stops once its refunds are judged (and held), before it stores
    them: set `judged` then, and goes on when `go` is set."""
    judged, go = asyncio.Event(), asyncio.Event()
    insert = telemetry.MongoSaleBook._insert

    async def stops_once(self: Any, tenant_id: str, records: list[Sale]) -> list[Sale]:
        if not judged.is_set():
            judged.set()
            await go.wait()
        return await insert(self, tenant_id, records)

    monkeypatch.setattr(telemetry.MongoSaleBook, "_insert", stops_once)
    return judged, go


async def held_by_an_add_that_died(
    storage: MongoStorage, tenant: Tenant, refund: Sale, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The add of `refund` held what it gives back on its sale, then died before storing it."""

    async def dies(self: Any, tenant_id: str, records: list[Sale]) -> list[Sale]:
        raise Died

    with monkeypatch.context() as patched:
        patched.setattr(telemetry.MongoSaleBook, "_insert", dies)
        with pytest.raises(Died):
            await refunds_of(storage, tenant, refund)


async def holds_on(storage: MongoStorage, tenant: Tenant, sale: Sale) -> list[str]:
    document = await storage.db["sales"].find_one({"tenant_id": tenant.id, "id": sale.id})
    assert document is not None
    return [h["id"] for h in document.get(telemetry.REFUND_HOLDS, [])]


@on_mongodb
async def test_a_hold_left_by_an_add_that_died_counts_until_it_is_dead(
    mongodb: MongoStorage, tenant: Tenant, sale: Sale, monkeypatch: pytest.MonkeyPatch
) -> None:
    await held_by_an_add_that_died(mongodb, tenant, a_refund("r1", sale, "15000"), monkeypatch)

    assert await refunds_of(mongodb, tenant, a_refund("r2", sale, "15000")) == ["amounts.net"]
    monkeypatch.setattr(telemetry, "HOLD_DEAD_AFTER", timedelta(seconds=-1))
    assert await refunds_of(mongodb, tenant, a_refund("r2", sale, "15000")) == [None]
    # The dead add's refund, sent again, is judged on what is left now.
    assert await refunds_of(mongodb, tenant, a_refund("r1", sale, "15000")) == ["amounts.net"]
    assert await holds_on(mongodb, tenant, sale) == []


@on_mongodb
async def test_a_retry_of_the_refund_whose_add_died_is_taken_on_its_own_hold_once(
    mongodb: MongoStorage, tenant: Tenant, sale: Sale, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = a_refund("r1", sale, "15000")
    await held_by_an_add_that_died(mongodb, tenant, first, monkeypatch)

    assert await refunds_of(mongodb, tenant, first) == [None]
    assert await refunds_of(mongodb, tenant, a_refund("r2", sale, "5000")) == [None]
    # Stored refunds count themselves: the next add drops their holds.
    assert await holds_on(mongodb, tenant, sale) == ["r2"]
    assert await refunds_of(mongodb, tenant, a_refund("r3", sale, "1")) == ["amounts.net"]
    assert await holds_on(mongodb, tenant, sale) == []


@on_mongodb
async def test_a_refund_judged_while_another_is_being_stored_counts_the_other(
    mongodb: MongoStorage, tenant: Tenant, sale: Sale, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first add is stopped after its refund was judged, before it is stored: the second
    add finds its hold, not its refund."""
    judged, stored = stopped_before_its_insert(monkeypatch)
    first = asyncio.create_task(refunds_of(mongodb, tenant, a_refund("r1", sale, "15000")))
    await judged.wait()

    second = await refunds_of(mongodb, tenant, a_refund("r2", sale, "15000"))
    stored.set()

    assert (await first, second) == ([None], ["amounts.net"])
