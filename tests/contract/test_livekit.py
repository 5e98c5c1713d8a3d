"""LiveKit API keys (with their servers' URLs), the log of handled webhooks, and what the
webhook relies on of sessions, on every store."""

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from domain.errors import Conflict, NotFound
from domain.livekit import LiveKitAccount
from domain.session import Session, SessionRequest
from domain.tenants import Tenant
from tests.contract.builders import T0, add_tenant
from tests.contract.races import Race

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
    storage: Any, tenant: Tenant, race: Race
) -> None:
    other = await add_tenant(storage, "globex")
    assert not await storage.webhooks.seen(tenant.id, "EV_1")

    recorded = await race(*[lambda s: s.webhooks.record(tenant.id, "EV_1", T0)] * 6)

    assert sorted(recorded) == [False] * 5 + [True]
    assert not await storage.webhooks.record(tenant.id, "EV_1", T0)
    assert await storage.webhooks.seen(tenant.id, "EV_1")
    assert not await storage.webhooks.seen(other.id, "EV_1")


async def test_a_finished_room_is_remembered_per_tenant_with_its_first_finish(
    storage: Any, tenant: Tenant, race: Race
) -> None:
    other = await add_tenant(storage, "globex")
    assert await storage.finished_rooms.finished_at(tenant.id, "RM_1") is None

    times = [T0 + timedelta(seconds=n) for n in range(6)]
    await race(*[lambda s, t=t: s.finished_rooms.finish(tenant.id, "RM_1", t) for t in times])
    first = await storage.finished_rooms.finished_at(tenant.id, "RM_1")
    await storage.finished_rooms.finish(tenant.id, "RM_1", T0 + timedelta(hours=1))

    assert first in times
    assert await storage.finished_rooms.finished_at(tenant.id, "RM_1") == first
    assert await storage.finished_rooms.finished_at(other.id, "RM_1") is None
    assert await storage.finished_rooms.finished_at(tenant.id, "RM_2") is None


async def test_which_of_several_rooms_finished_is_answered_per_tenant_at_once(
    storage: Any, tenant: Tenant
) -> None:
    other = await add_tenant(storage, "globex")
    await storage.finished_rooms.finish(tenant.id, "RM_1", T0)
    await storage.finished_rooms.finish(tenant.id, "RM_3", T0 + timedelta(minutes=3))
    await storage.finished_rooms.finish(other.id, "RM_2", T0)

    asked = ["RM_1", "RM_2", "RM_3", "RM_4"]
    assert await storage.finished_rooms.which_finished(tenant.id, asked) == {
        "RM_1": T0,
        "RM_3": T0 + timedelta(minutes=3),
    }
    assert await storage.finished_rooms.which_finished(other.id, asked) == {"RM_2": T0}
    assert await storage.finished_rooms.which_finished(tenant.id, []) == {}


async def test_a_tenants_accounts_are_its_own_by_key_with_their_server_urls(
    storage: Any, tenant: Tenant
) -> None:
    other = await add_tenant(storage, "globex")
    b = LiveKitAccount("APIb", tenant.id, "secret-b", "https://lk.example.com")
    a = LiveKitAccount("APIa", tenant.id, "secret-a")
    for account in (b, a, LiveKitAccount("APIc", other.id, "secret-c", "http://10.0.0.7:7880")):
        await storage.livekit_accounts.add(account)

    assert await storage.livekit_accounts.of_tenant(tenant.id) == [a, b]
    assert await storage.livekit_accounts.of_tenant("no-such-tenant") == []


async def test_a_url_is_set_and_removed_only_by_the_keys_own_tenant(
    storage: Any, tenant: Tenant
) -> None:
    other = await add_tenant(storage, "globex")
    await storage.livekit_accounts.add(LiveKitAccount("APIkey", tenant.id, "secret"))

    set_ = await storage.livekit_accounts.set_url(tenant.id, "APIkey", "https://lk.example.com")
    with pytest.raises(NotFound):
        await storage.livekit_accounts.set_url(other.id, "APIkey", "https://evil.example.com")
    with pytest.raises(NotFound):
        await storage.livekit_accounts.set_url(tenant.id, "APIother", "https://lk.example.com")

    assert set_ == LiveKitAccount("APIkey", tenant.id, "secret", "https://lk.example.com")
    assert await storage.livekit_accounts.get("APIkey") == set_
    removed = await storage.livekit_accounts.set_url(tenant.id, "APIkey", None)
    assert removed == await storage.livekit_accounts.get("APIkey") == replace(set_, url=None)


async def test_a_new_secret_keeps_the_url_unless_another_is_given(
    storage: Any, tenant: Tenant
) -> None:
    first = LiveKitAccount("APIkey", tenant.id, "first", "https://lk.example.com")
    await storage.livekit_accounts.add(first)

    await storage.livekit_accounts.add(LiveKitAccount("APIkey", tenant.id, "second"))
    assert await storage.livekit_accounts.get("APIkey") == replace(first, api_secret="second")

    moved = LiveKitAccount("APIkey", tenant.id, "third", "https://lk2.example.com")
    await storage.livekit_accounts.add(moved)
    assert await storage.livekit_accounts.get("APIkey") == moved


async def test_a_sign_of_life_for_a_stay_not_stored_yet_is_not_found_and_stores_nothing(
    storage: Any, tenant: Tenant
) -> None:
    # A webhook past the join tries the stay's sign of life first, and opens the stay when it
    # is not found (its join was overtaken, or dropped).
    session = Session.start(tenant.id, str(uuid.uuid4()), SessionRequest("livekit", "r", "u"), T0)

    with pytest.raises(NotFound):
        await storage.sessions.sign_of_life(tenant.id, session.id, T0, T0, timedelta(days=7))

    assert await storage.sessions.get(tenant.id, session.id) is None
    assert await storage.sessions.add(session)
