"""A hostile review of the refund cap (a helper's, 2026-12-06): a sale's refunds give back at most
its net, decided as they are stored (SaleBook.add, domain.sales.over_refunds), on every store.

Batches (a refund after its sale in one batch, duplicate ids, refunds of two sales), ids reused
with other content, amounts at 9 places near 10^15, concurrent senders (many refunds of one
sale, retries of one refund, batches locking two sales in opposite orders), MongoDB's holds
(a dead add's, one lost to an id taken meanwhile, their growth, an erasure and an export with
holds present), a resumed import, and the HTTP answer."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from application.data_rights.erase_subject import EraseSubjectCommand
from application.ports import Window
from application.telemetry.recorded import Recorded
from application.transfer.export_tenant import ExportTenantQuery
from application.transfer.import_tenant import ImportTenantCommand
from domain.errors import Conflict, InvalidInput
from domain.sales import Sale, SalesFilter, SalesGrouping, SalesTotal, sales_totals
from domain.tenants import Tenant
from tests.app_client import Api
from tests.contract.builders import stored_session, wired
from tests.contract.races import Proxy, Race
from tests.contract.telemetry_builders import (
    CLOCK,
    a_refund,
    a_sale,
    amounts,
    record_sales,
    refused_on,
)
from tests.contract.test_mongodb_refund_holds import (
    held_by_an_add_that_died,
    stopped_before_its_insert,
)
from tests.http.envelope import assert_error

pytestmark = pytest.mark.anyio

on_mongodb = pytest.mark.parametrize("storage_url", ["mongodb"], indirect=True)
MAX = "999999999999999.999999999"  # the largest amount there is (below 10^15, 9 places)


def why(recorded: Recorded[Sale], index: int) -> str:
    refusal = recorded.items[index].refused
    assert isinstance(refusal, InvalidInput), refusal
    return refusal.message


def left(amount: str, sale: str = "s1") -> str:
    return f"is more than the {amount} KRW left to refund of sale {sale}"


async def given_back(storage: Any, tenant: Tenant) -> dict[str, Decimal]:
    """What the stored refunds give back, per sale they refund (read back from the store)."""
    found = await storage.sales.find(tenant.id, SalesFilter(), Window(), 500)
    totals: dict[str, Decimal] = {}
    for sale in found:
        if sale.refund_of is not None:
            totals[sale.refund_of] = totals.get(sale.refund_of, Decimal(0)) + sale.amounts.net
    return totals


async def report_total(storage: Any, tenant: Tenant) -> SalesTotal:
    figures = await storage.sales.report(
        tenant.id, Window(), SalesGrouping.parse("device_id"), None
    )
    (total,) = sales_totals(figures)
    return total


async def a_stored_sale(storage: Any, tenant: Tenant, id: str = "s1", net: str = "20000") -> Sale:
    session = await stored_session(storage, tenant)
    sale = a_sale(id, session.id, amounts=amounts(net))
    assert refused_on(await record_sales(storage, tenant, sale)) == [None]
    return sale


# --- batches ------------------------------------------------------------------------------


async def test_a_refund_sent_twice_in_its_batch_counts_once(storage: Any, tenant: Tenant) -> None:
    """The second copy is a replay of the first: it neither counts again nor is refused for
    what the first gave back. (Fails if a store judged every copy, or summed the batch's.)"""
    sale = await a_stored_sale(storage, tenant)
    copies = [a_refund("r1", sale, "12000") for _ in range(2)]  # two items: equal, not one

    recorded = await record_sales(
        storage, tenant, *copies, a_refund("r2", sale, "8000"), a_refund("r3", sale, "1")
    )

    assert refused_on(recorded) == [None, None, None, "amounts.net"]
    assert (recorded.inserted, recorded.duplicates) == (2, 1)
    assert why(recorded, 3) == left("0")
    assert await given_back(storage, tenant) == {"s1": Decimal("20000")}


async def test_a_refund_refused_in_its_batch_leaves_its_id_to_a_later_copy_that_fits(
    storage: Any, tenant: Tenant
) -> None:
    """As a copy refused for its date or session leaves the id to a later copy of the batch, a
    copy refused by the cap stored nothing: the next copy, which fits, is judged on its own.
    SQL and MongoDB refuse it saying its 10000 "is more than the 20000 KRW left", which is
    false, and the stores disagree on one batch."""
    sale = await a_stored_sale(storage, tenant)

    recorded = await record_sales(
        storage, tenant, a_refund("r1", sale, "25000"), a_refund("r1", sale, "10000")
    )

    assert refused_on(recorded) == ["amounts.net", None]
    assert await given_back(storage, tenant) == {"s1": Decimal("10000")}


async def test_refunds_of_two_sales_in_one_batch_each_count_only_against_their_own(
    storage: Any, tenant: Tenant
) -> None:
    """(Fails if a store pooled the batch's refunds, or judged one sale's against another's.)"""
    one = await a_stored_sale(storage, tenant, "s1", "20000")
    two = await a_stored_sale(storage, tenant, "s2", "9000")

    recorded = await record_sales(
        storage,
        tenant,
        a_refund("a1", two, "8000"),
        a_refund("b1", one, "15000"),
        a_refund("a2", two, "1000"),
        a_refund("b2", one, "6000"),
        a_refund("a3", two, "0.000000001"),
        a_refund("b3", one, "5000"),
    )

    assert refused_on(recorded) == [None, None, None, "amounts.net", "amounts.net", None]
    assert why(recorded, 3) == left("5000", "s1")
    assert why(recorded, 4) == left("0", "s2")
    assert await given_back(storage, tenant) == {"s1": Decimal("20000"), "s2": Decimal("9000")}


async def test_a_batch_of_a_sale_and_its_refunds_sent_again_is_replays_and_a_new_one_is_refused(
    storage: Any, tenant: Tenant
) -> None:
    """The refunds wait for their sale (a second add); sent again, each is a replay, and a new
    refund in the same retried batch is judged on what the first send gave back."""
    session = await stored_session(storage, tenant)
    sale = a_sale("s1", session.id, amounts=amounts("20000"))
    batch = [sale, a_refund("r1", sale, "15000"), a_refund("r2", sale, "5000")]

    first = await record_sales(storage, tenant, *batch)
    again = await record_sales(storage, tenant, *batch, a_refund("r3", sale, "0.5"))

    assert refused_on(first) == [None, None, None]
    assert refused_on(again) == [None, None, None, "amounts.net"]
    assert again.duplicates == 3 and why(again, 3) == left("0")


async def test_a_refund_id_taken_with_other_content_is_a_conflict_whatever_is_left(
    storage: Any, tenant: Tenant
) -> None:
    """Once the sale is all given back, a refund id sent with another net is a conflict, not a
    cap refusal; with its own net a replay. (Fails if a store judged the cap before the id.)"""
    sale = await a_stored_sale(storage, tenant)
    five = a_refund("r1", sale, "5000")
    await record_sales(storage, tenant, five, a_refund("r2", sale, "15000"))

    other = await record_sales(storage, tenant, a_refund("r1", sale, "6000"))
    smaller = await record_sales(storage, tenant, a_refund("r1", sale, "4000"))
    replay = await record_sales(storage, tenant, five)

    assert (refused_on(other), refused_on(smaller), refused_on(replay)) == (
        ["conflict"],
        ["conflict"],
        [None],
    )
    assert replay.duplicates == 1
    assert await given_back(storage, tenant) == {"s1": Decimal("20000")}


async def test_a_zero_refund_is_taken_even_of_a_sale_all_given_back(
    storage: Any, tenant: Tenant
) -> None:
    """Zero is never more than what is left (0). (Fails if the cap compared with >=.)"""
    sale = await a_stored_sale(storage, tenant)
    await record_sales(storage, tenant, a_refund("r1", sale, "20000"))

    recorded = await record_sales(storage, tenant, a_refund("r2", sale, "0"))

    assert refused_on(recorded) == [None]
    total = await report_total(storage, tenant)
    assert (total.net, total.refunded) == (Decimal("20000"), Decimal("20000"))


async def test_refunds_at_nine_places_of_the_largest_sale_are_counted_exactly(
    storage: Any, tenant: Tenant
) -> None:
    """What is left is exact to the last of 9 places just below 10^15 (a float, or a store's
    sum at fewer digits, would round it), and the refusal says it without an exponent."""
    session = await stored_session(storage, tenant)
    sale = a_sale("s1", session.id, amounts=amounts(MAX))
    await record_sales(storage, tenant, sale)

    first = await record_sales(
        storage, tenant, a_refund("r1", sale, "0.000000001"), a_refund("r2", sale, MAX)
    )
    second = await record_sales(
        storage,
        tenant,
        a_refund("r3", sale, "999999999999999.999999998"),
        a_refund("r4", sale, "0.000000001"),
    )

    assert refused_on(first) == [None, "amounts.net"]
    assert why(first, 1) == left("999999999999999.999999998")
    assert refused_on(second) == [None, "amounts.net"]
    assert why(second, 1) == left("0")
    total = await report_total(storage, tenant)
    assert total.refunded == total.net == Decimal(MAX)


async def test_a_refund_of_a_refund_is_refused_though_its_net_would_fit(
    storage: Any, tenant: Tenant
) -> None:
    """Stored or earlier in the batch, a refund is no sale to refund (check_refunds), however
    much its own sale has left. (Fails if the cap check replaced the rule.)"""
    sale = await a_stored_sale(storage, tenant)
    r1 = a_refund("r1", sale, "5000")
    await record_sales(storage, tenant, r1)
    r2 = a_refund("r2", sale, "5000")

    recorded = await record_sales(
        storage,
        tenant,
        a_refund("rr1", r1, "1", minutes=20),
        r2,
        a_refund("rr2", r2, "1", minutes=20),
    )

    assert refused_on(recorded) == ["refund_of", None, "refund_of"]
    assert await given_back(storage, tenant) == {"s1": Decimal("10000")}


# --- concurrent senders -------------------------------------------------------------------


async def test_many_concurrent_refunds_of_one_sale_take_exactly_what_fits(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Eight senders of 3000 each on 20000: six are taken, two refused, each told the 2000
    left. (Fails if a store judged on what it read before another's refund was stored.)"""
    sale = await a_stored_sale(storage, tenant)
    refunds = [a_refund(f"r{i}", sale, "3000", minutes=10 + i) for i in range(8)]

    outcomes: list[Recorded[Sale]] = await race(
        *((lambda s, r=r: record_sales(s, tenant, r)) for r in refunds)
    )

    assert sum(o.inserted for o in outcomes) == 6
    refusals = [why(o, 0) for o in outcomes if not o.inserted]
    assert refusals == [left("2000")] * 2
    total = await report_total(storage, tenant)
    assert (total.net, total.refunded) == (Decimal("20000"), Decimal("18000"))


async def test_concurrent_retries_of_one_refund_are_taken_once_and_never_refused_for_it(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """Three senders of r1 (12000) and one of r2 (12000), at once (twice, on two sales): either
    r1 is taken once (two replays) and r2 refused, or r2 taken and every r1 refused; never one
    r1 taken and another refused for the money the first gave back. (Fails if a retry counted
    its own hold or row.)"""
    for n in range(2):
        sale = await a_stored_sale(storage, tenant, f"s{n}")
        r1, r2 = a_refund(f"r1-{n}", sale, "12000"), a_refund(f"r2-{n}", sale, "12000", 11)

        outcomes: list[Recorded[Sale]] = await race(
            *((lambda s, r=r: record_sales(s, tenant, r)) for r in (r1, r1, r1, r2))
        )

        ones = [refused_on(o)[0] for o in outcomes[:3]]
        if refused_on(outcomes[3]) == [None]:
            assert ones == ["amounts.net"] * 3
        else:
            assert (ones, refused_on(outcomes[3])) == ([None] * 3, ["amounts.net"])
            assert sum(o.inserted for o in outcomes[:3]) == 1
        assert (await given_back(storage, tenant))[sale.id] == Decimal("12000")


async def test_batches_refunding_two_sales_in_opposite_orders_both_get_through(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """One batch refunds s1 then s2, the other s2 then s1, at once, three times: on PostgreSQL
    each locks the two sales; in two orders they would deadlock (one batch failing)."""
    one = await a_stored_sale(storage, tenant, "s1")
    two = await a_stored_sale(storage, tenant, "s2")

    for n in range(3):
        forward = [a_refund(f"a{n}", one, "1000"), a_refund(f"b{n}", two, "1000")]
        backward = [a_refund(f"d{n}", two, "1000"), a_refund(f"c{n}", one, "1000")]
        outcomes: list[Recorded[Sale]] = await race(
            *((lambda s, b=b: record_sales(s, tenant, *b)) for b in (forward, backward))
        )
        assert [refused_on(o) for o in outcomes] == [[None, None], [None, None]]

    assert await given_back(storage, tenant) == {"s1": Decimal("6000"), "s2": Decimal("6000")}


async def test_concurrent_batches_each_with_the_sale_and_a_refund_give_back_at_most_it(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    """A kiosk's batch of a sale and its refund, retried by two senders, races another batch of
    the same sale with another refund: the sale is stored once, and one refund of 15000."""
    session = await stored_session(storage, tenant)
    sale = a_sale("s1", session.id, amounts=amounts("20000"))
    mine = [sale, a_refund("r1", sale, "15000")]
    theirs = [sale, a_refund("r2", sale, "15000", minutes=11)]

    outcomes: list[Recorded[Sale]] = await race(
        *((lambda s, b=b: record_sales(s, tenant, *b)) for b in (mine, mine, theirs))
    )

    assert sum(o.items[0].created for o in outcomes) == 1
    assert all(refused_on(o)[0] is None for o in outcomes)
    r1s = {refused_on(o)[1] for o in outcomes[:2]}
    assert len(r1s) == 1  # both senders of r1 get one answer: taken (and a replay) or refused
    assert (r1s == {None}) != (refused_on(outcomes[2])[1] is None)
    assert await given_back(storage, tenant) == {"s1": Decimal("15000")}


# --- MongoDB's holds ----------------------------------------------------------------------


async def sale_document(storage: Any, tenant: Tenant, sale_id: str = "s1") -> dict[str, Any]:
    document: dict[str, Any] | None = await storage.db["sales"].find_one(
        {"tenant_id": tenant.id, "id": sale_id}
    )
    assert document is not None
    return document


class PausesFirstHold(Proxy):
    """The sales collection: the first guarded write of holds waits until `go` (the add has
    judged its refunds on what it read), so another add runs whole in between."""

    def __init__(self, inner: Any, reached: asyncio.Event, go: asyncio.Event) -> None:
        super().__init__(inner)
        self._reached, self._go = reached, go

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        if not self._reached.is_set():
            self._reached.set()
            await self._go.wait()
        return await self._inner.update_one(*args, **kwargs)


@on_mongodb
async def test_mongodb_a_hold_judged_on_a_stale_read_is_judged_again(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """r1 (15000) is judged to fit, and stopped before it writes its hold; r2 (15000) is held
    and stored meanwhile. r1's write finds the turn moved: judged again, it is refused.
    (Fails if the write of holds were not guarded on the sale's turn: both stored, 30000.)"""
    sale = await a_stored_sale(storage, tenant)
    reached, go = asyncio.Event(), asyncio.Event()
    book = storage.sales
    monkeypatch.setattr(book, "_collection", PausesFirstHold(book._collection, reached, go))

    stale = asyncio.create_task(record_sales(storage, tenant, a_refund("r1", sale, "15000")))
    await reached.wait()
    meanwhile = await record_sales(storage, tenant, a_refund("r2", sale, "15000", minutes=11))
    go.set()

    assert (refused_on(meanwhile), refused_on(await stale)) == ([None], ["amounts.net"])
    assert why(await stale, 0) == left("5000")


@on_mongodb
async def test_mongodb_a_held_refund_id_sent_again_with_a_larger_net_is_judged_on_it(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The add of r1 (5000) died after its hold; r2 (15000) fits in what is left. r1, never
    stored, is then sent with 20000: a new refund, more than what is left."""
    sale = await a_stored_sale(storage, tenant)
    await held_by_an_add_that_died(storage, tenant, a_refund("r1", sale, "5000"), monkeypatch)
    assert refused_on(await record_sales(storage, tenant, a_refund("r2", sale, "15000"))) == [None]

    larger = await record_sales(storage, tenant, a_refund("r1", sale, "20000"))

    assert refused_on(larger) == ["amounts.net"]
    total = await report_total(storage, tenant)
    assert total.refunded <= total.net, total


@on_mongodb
async def test_mongodb_a_refund_that_lost_its_id_to_another_sale_holds_nothing_back(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """r1 (15000) of s1 is held, then, before it is stored, another sale takes the id r1: r1 is
    a conflict, nothing of s1 is given back, and a refund of 10000 of it is taken."""
    sale = await a_stored_sale(storage, tenant)
    other = await a_stored_sale(storage, tenant, "s2")
    judged, go = stopped_before_its_insert(monkeypatch)
    held = asyncio.create_task(record_sales(storage, tenant, a_refund("r1", sale, "15000")))
    await judged.wait()
    taken = await record_sales(storage, tenant, a_refund("r1", other, "1000"))
    go.set()
    lost = await held

    assert (refused_on(taken), refused_on(lost)) == ([None], ["conflict"])
    later = await record_sales(storage, tenant, a_refund("r2", sale, "10000"))
    assert refused_on(later) == [None], why(later, 0)


@on_mongodb
async def test_mongodb_holds_go_with_the_next_add_once_their_refunds_are_stored(
    storage: Any, tenant: Tenant
) -> None:
    """A sale refunded many times keeps at most the last add's holds; a refusal writes nothing
    on it (its turn stays). (Fails if stored refunds' holds were kept: the
    document would grow with every refund, and each would count twice.)"""
    sale = await a_stored_sale(storage, tenant)
    for n in range(10):
        await record_sales(storage, tenant, a_refund(f"r{n}", sale, "1000", minutes=10 + n))
        assert [h["id"] for h in (await sale_document(storage, tenant))["refund_holds"]] == [
            f"r{n}"
        ]
    # A replay drops the last hold (its refund is stored); it and a refusal hold nothing new.
    replay = await record_sales(storage, tenant, a_refund("r9", sale, "1000", minutes=19))
    document = await sale_document(storage, tenant)
    refused = await record_sales(storage, tenant, a_refund("x", sale, "10001"))

    assert (replay.duplicates, refused_on(refused)) == (1, ["amounts.net"])
    assert why(refused, 0) == left("10000")
    assert document["refund_holds"] == []
    assert (await sale_document(storage, tenant))["refund_turn"] == document["refund_turn"]


@on_mongodb
async def test_mongodb_an_erasure_of_the_subject_keeps_its_sales_holds(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An erasure rewrites the sale's attributes: a hold on it stays and still counts. (Fails
    if the erasure replaced the sale's document from the domain's Sale, holds dropped.)"""
    session = await stored_session(storage, tenant, subject_id="ana")
    sale = a_sale("s1", session.id, amounts=amounts("20000"), attributes={"ip": "10.0.0.9"})
    await record_sales(storage, tenant, sale)
    await held_by_an_add_that_died(storage, tenant, a_refund("r1", sale, "15000"), monkeypatch)

    await wired(storage, CLOCK).use_cases().erase_subject()(EraseSubjectCommand(tenant, "ana"))

    document = await sale_document(storage, tenant)
    assert document["attributes"] != sale.attributes  # the erasure rewrote this sale
    assert [h["id"] for h in document["refund_holds"]] == ["r1"]
    refused = await record_sales(storage, tenant, a_refund("r2", sale, "15000"))
    assert why(refused, 0) == left("5000")


async def export(storage: Any, name: str) -> list[str]:
    exported = await wired(storage).use_cases().export_tenant()(ExportTenantQuery(name))
    return [line async for line in exported.lines]


def as_moved(lines: list[str], tenant: Tenant, leave_out: str | None = None) -> list[str]:
    """The export as another tenant's (id and name), without the sale `leave_out` (as an import
    that died before storing it had it)."""
    renamed = [
        line.replace(tenant.id, "moved-id").replace(f'"name":"{tenant.name}"', '"name":"moved"')
        for line in lines
    ]
    kept = [line for line in renamed if not leave_out or f'"id":"{leave_out}"' not in line]
    end = json.loads(kept[-1])
    return [*kept[:-1], json.dumps({**end, "records": len(kept) - 2}, separators=(",", ":"))]


@on_mongodb
async def test_mongodb_an_export_with_holds_present_carries_none_and_imports_as_it_was(
    storage: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead add's hold is no record of the tenant: the export is the same without it, an
    import into this store adds nothing (the hold kept), and the moved tenant's sale has none."""
    sale = await a_stored_sale(storage, tenant)
    await record_sales(storage, tenant, a_refund("r0", sale, "1000"))
    before = await export(storage, tenant.name)
    await held_by_an_add_that_died(storage, tenant, a_refund("r1", sale, "15000"), monkeypatch)

    lines = await export(storage, tenant.name)
    counts = await wired(storage).use_cases().import_tenant()(ImportTenantCommand(lines))
    await wired(storage).use_cases().import_tenant()(ImportTenantCommand(as_moved(lines, tenant)))

    assert lines == before and sum(counts.new.values()) == 0
    assert [h["id"] for h in (await sale_document(storage, tenant))["refund_holds"]] == ["r1"]
    moved = await storage.db["sales"].find_one({"tenant_id": "moved-id", "id": "s1"})
    assert moved is not None and "refund_holds" not in moved
    here = await record_sales(storage, tenant, a_refund("r2", sale, "15000"))
    assert why(here, 0) == left("4000")


# --- a resumed import ---------------------------------------------------------------------


async def test_a_resumed_import_gives_back_at_most_a_sale(storage: Any, tenant: Tenant) -> None:
    """An import died before it stored refund r1; the moved tenant took a refund of the sale
    meanwhile; the import, run again, may not give back more than the sale between them."""
    sale = await a_stored_sale(storage, tenant)
    await record_sales(storage, tenant, a_refund("r1", sale, "15000"))
    lines = await export(storage, tenant.name)
    importing = wired(storage).use_cases().import_tenant()
    await importing(ImportTenantCommand(as_moved(lines, tenant, leave_out="r1")))
    moved = Tenant("moved-id", "moved", tenant.created_at, tenant.settings)
    live = await record_sales(storage, moved, a_refund("r2", sale, "15000", minutes=11))
    assert refused_on(live) == [None]

    with pytest.raises(Conflict, match="refunds of sale s1 in this file and those the store"):
        await importing(ImportTenantCommand(as_moved(lines, tenant)))

    total = await report_total(storage, moved)
    assert total.refunded <= total.net, total


# --- HTTP -----------------------------------------------------------------------------------


@pytest.mark.parametrize("storage_url", ["memory", "postgresql"], indirect=True)
def test_http_a_refund_past_its_sale_is_a_422_on_amounts_net_saying_what_is_left(
    api: Api,
) -> None:
    """One sale per request: 201, then 422 validation_error with one field and the amount left,
    a retry of a taken refund 200, its id with another net 409; never a 500."""
    session = api.start(kind="kiosk", resource_id="kiosk-1", subject_id=None, client_key="k")
    occurred = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    def post(id: str, net: str, **fields: Any) -> Any:
        body = {
            "id": id,
            "session_id": session["id"],
            "device_id": "kiosk-1",
            "occurred_at": occurred,
            "currency": "KRW",
            "amounts": {"gross": net, "discount": "0", "tax": "0", "net": net},
            "payment_method": "card",
            **fields,
        }
        return api.client.post("/v1/sales", json=body, headers=api.app)

    refund = {"status": "refunded", "refund_of": "S-1"}
    assert post("S-1", "18000").status_code == 201
    assert post("R-1", "6000.5", **refund).status_code == 201
    over = post("R-2", "12000", **refund)
    again = post("R-1", "6000.5", **refund)
    other = post("R-1", "6000", **refund)

    body = assert_error(over, 422, "validation_error")
    message = "is more than the 11999.5 KRW left to refund of sale S-1"
    assert body["fields"] == [{"field": "amounts.net", "message": message}]
    assert again.status_code == 200, again.text
    assert_error(other, 409, "conflict")
