"""LiveKit API keys and the log of handled webhooks, on every store."""

import asyncio
from typing import Any

import pytest

from domain.errors import Conflict
from domain.livekit import LiveKitAccount
from domain.tenants import Tenant
from tests.contract.builders import T0, add_tenant

pytestmark = pytest.mark.anyio


async def test_a_key_is_registered_for_one_tenant_which_may_replace_its_secret(
    storage: Any, tenant: Tenant
) -> None:
    other = await add_tenant(storage, "globex")
    await storage.livekit_accounts.add(LiveKitAccount("APIkey", tenant.id, "first"))
    await storage.livekit_accounts.add(LiveKitAccount("APIkey", tenant.id, "second"))

    with pytest.raises(Conflict):
        await storage.livekit_accounts.add(LiveKitAccount("APIkey", other.id, "stolen"))

    assert await storage.livekit_accounts.get("APIkey") == LiveKitAccount(
        "APIkey", tenant.id, "second"
    )
    assert await storage.livekit_accounts.get("APIother") is None


async def test_a_handled_webhook_is_remembered_per_tenant_however_often_recorded(
    storage: Any, tenant: Tenant
) -> None:
    other = await add_tenant(storage, "globex")
    assert not await storage.webhooks.seen(tenant.id, "EV_1")

    await asyncio.gather(*(storage.webhooks.record(tenant.id, "EV_1", T0) for _ in range(6)))

    assert await storage.webhooks.seen(tenant.id, "EV_1")
    assert not await storage.webhooks.seen(other.id, "EV_1")
