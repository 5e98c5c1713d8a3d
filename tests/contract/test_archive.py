"""A tenant's whole state exported, and imported into a store that has it already or not."""

import json
from typing import Any

import pytest

from application.transfer.export_tenant import ExportTenantQuery
from application.transfer.import_tenant import ImportTenantCommand
from domain.errors import Conflict
from domain.funnels import Funnel, Stage, StageMatch
from domain.plans import Subscription
from domain.tenants import Tenant
from tests.contract.builders import T0, a_tenant_with_everything, at, wired

pytestmark = pytest.mark.anyio


async def export(storage: Any, name: str) -> list[str]:
    exported = await wired(storage).use_cases().export_tenant()(ExportTenantQuery(name))
    return [line async for line in exported.lines]


PHOTO = Funnel(
    "photo",
    "kiosk",
    (Stage("frame", StageMatch("screen_enter", label="frame")), Stage("pay", StageMatch("pay"))),
)


async def everything_and_a_funnel(storage: Any) -> Tenant:
    tenant = await a_tenant_with_everything(storage)
    await storage.funnels.put(tenant.id, PHOTO)
    return tenant


async def test_an_export_carries_every_kind_of_state(storage: Any) -> None:
    await everything_and_a_funnel(storage)

    lines = await export(storage, "exam-prep")

    kinds = [json.loads(line)["record"] for line in lines[1:-1]]
    assert json.loads(lines[-1]) == {"record": "end", "records": len(kinds)}
    assert kinds == sorted(kinds, key=kinds.index)  # grouped, in the order an import needs
    assert set(kinds) == {
        "tenant",
        "api_key",
        "rate",
        "plan",
        "subscription",
        "subscription_set",
        "registration",
        "funnel",
        "session",
        "event",
        "ledger_entry",
        "alert",
        "livekit_account",
        "snapshot",
        "error",
        "metric",
        "sale",
    }
    assert kinds.count("session") == 4 and kinds.count("event") == 6
    assert kinds.count("sale") == 2  # the sale and its refund


async def test_importing_what_a_store_holds_already_adds_nothing(storage: Any) -> None:
    await everything_and_a_funnel(storage)
    before = await export(storage, "exam-prep")

    counts = await wired(storage).use_cases().import_tenant()(ImportTenantCommand(before))

    assert sum(counts.new.values()) == 0
    assert sum(counts.present.values()) == len(before) - 2  # all but the header and the end
    assert await export(storage, "exam-prep") == before


async def test_an_imported_subscription_history_goes_on_where_it_stopped(storage: Any) -> None:
    tenant = await a_tenant_with_everything(storage)
    lines = await export(storage, "exam-prep")
    moved = lines[1].replace(tenant.id, "moved-id").replace('"name":"exam-prep"', '"name":"moved"')

    await (
        wired(storage)
        .use_cases()
        .import_tenant()(ImportTenantCommand([lines[0], moved, *lines[2:]]))
    )
    await storage.subscriptions.put("moved-id", Subscription("jun", "free", at(60)), at(5))

    history = await storage.subscriptions.history("moved-id", "jun")
    assert [(e.number, e.subscription.plan_id) for e in history] == [(2, "free"), (1, "pass")]
    assert (await storage.subscriptions.get("moved-id", "jun")).plan_id == "free"


async def test_an_imported_funnel_is_the_funnel_exported(storage: Any) -> None:
    tenant = await everything_and_a_funnel(storage)
    lines = await export(storage, "exam-prep")
    moved = lines[1].replace(tenant.id, "moved-id").replace('"name":"exam-prep"', '"name":"moved"')

    await (
        wired(storage)
        .use_cases()
        .import_tenant()(ImportTenantCommand([lines[0], moved, *lines[2:]]))
    )

    assert await storage.funnels.all("moved-id") == [PHOTO]


async def test_a_tenant_whose_name_is_taken_here_is_refused(storage: Any) -> None:
    await a_tenant_with_everything(storage)
    lines = await export(storage, "exam-prep")
    await storage.tenants.add(Tenant("another-id", "elsewhere", T0))
    renamed = [lines[0], lines[1].replace('"name":"exam-prep"', '"name":"elsewhere"'), *lines[2:]]

    with pytest.raises(Conflict):
        await wired(storage).use_cases().import_tenant()(ImportTenantCommand(renamed))
