"""TenantRepository and ApiKeyRepository contract."""

import threading
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from domain.errors import Conflict, NotFound
from domain.tenants import ApiKey, Role, Tenant, TenantSettings
from tests.contract.builders import T0, add_tenant
from tests.contract.races import Call, Race, wait_for

pytestmark = pytest.mark.anyio


async def test_tenants_are_found_by_id_and_by_name_with_their_settings(storage: Any) -> None:
    tenant = await add_tenant(storage, "acme", idle_timeout_seconds=60, max_batch_events=10)
    await add_tenant(storage, "globex")

    assert await storage.tenants.get(tenant.id) == tenant
    assert await storage.tenants.get_by_name("acme") == tenant
    assert tenant.settings == TenantSettings(idle_timeout_seconds=60, max_batch_events=10)
    assert [t.name for t in await storage.tenants.all()] == ["acme", "globex"]
    assert await storage.tenants.get_by_name("initech") is None


async def test_a_tenant_name_is_taken_once_even_by_concurrent_callers(
    storage: Any, race: Race
) -> None:
    attempts = [Tenant(str(uuid.uuid4()), "acme", T0) for _ in range(6)]

    def add(tenant: Tenant) -> Call:
        return lambda s: s.tenants.add(tenant)

    results = await race(*(add(t) for t in attempts), return_exceptions=True)

    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)
    assert len(await storage.tenants.all()) == 1


async def test_settings_of_an_unknown_tenant_are_not_found_and_create_nothing(
    storage: Any,
) -> None:
    with pytest.raises(NotFound):
        await storage.tenants.change_settings(str(uuid.uuid4()), lambda s: s)

    assert await storage.tenants.all() == []


async def test_settings_changed_at_once_keep_every_change(storage: Any, race: Race) -> None:
    """Six callers, as six server processes, each set the idle timeout of a kind of its own
    from the settings as they find them: none undoes another's."""
    tenant = await add_tenant(storage, "acme")
    kinds = [f"kind-{n}" for n in range(6)]

    def timed_out_after_a_minute(kind: str) -> Call:
        def change(current: TenantSettings) -> TenantSettings:
            return replace(current, idle_timeouts={**current.idle_timeouts, kind: 60})

        return lambda s: s.tenants.change_settings(tenant.id, change)

    await race(*(timed_out_after_a_minute(kind) for kind in kinds))

    stored = await storage.tenants.get(tenant.id)
    assert stored.settings.idle_timeouts == dict.fromkeys(kinds, 60)


async def test_a_settings_change_made_while_another_is_computed_stays(
    storage: Any, race: Race
) -> None:
    """One change is computed slowly; another, to another field, is made meanwhile (it waits
    for the first, or the first is computed again from what it left): both stay."""
    tenant = await add_tenant(storage, "acme")
    computing = threading.Event()

    def slowly_keep_sessions_a_day(current: TenantSettings) -> TenantSettings:
        computing.set()
        time.sleep(0.5)
        return replace(current, session_retention_days=1)

    async def slow(s: Any) -> Any:
        return await s.tenants.change_settings(tenant.id, slowly_keep_sessions_a_day)

    async def meanwhile(s: Any) -> Any:
        await wait_for(computing)
        return await s.tenants.change_settings(
            tenant.id, lambda current: replace(current, personal_attributes=("email",))
        )

    await race(slow, meanwhile)

    stored = (await storage.tenants.get(tenant.id)).settings
    assert (stored.session_retention_days, stored.personal_attributes) == (1, ("email",))


async def test_api_keys_are_found_by_the_hash_of_their_secret(storage: Any) -> None:
    tenant = await add_tenant(storage)
    key, secret = ApiKey.issue(str(uuid.uuid4()), tenant.id, Role.INGEST, T0)
    await storage.api_keys.add(key)

    assert secret not in key.secret_hash
    assert await storage.api_keys.get_by_hash(key.secret_hash) == key
    assert await storage.api_keys.get_by_hash("0" * 64) is None


async def test_keys_are_listed_revoked_once_and_their_use_recorded_forward_only(
    storage: Any,
) -> None:
    tenant, other = await add_tenant(storage), await add_tenant(storage, "other")
    expires = T0 + timedelta(days=30)
    scope = ["kiosk-17", "kiosk-18"]
    first, _ = ApiKey.issue("k-1", tenant.id, Role.INGEST, T0, "kiosk-17", expires, scope)
    second, _ = ApiKey.issue("k-2", tenant.id, Role.APP, T0 + timedelta(minutes=1))
    theirs, _ = ApiKey.issue("k-3", other.id, Role.ADMIN, T0)
    for key in (second, first, theirs):
        await storage.api_keys.add(key)

    revoked = await storage.api_keys.revoke(tenant.id, "k-1", T0 + timedelta(hours=1))
    again = await storage.api_keys.revoke(tenant.id, "k-1", T0 + timedelta(hours=2))
    not_mine = await storage.api_keys.revoke(tenant.id, "k-3", T0)
    await storage.api_keys.used("k-2", T0 + timedelta(minutes=5))
    await storage.api_keys.used("k-2", T0 + timedelta(minutes=3))  # a slower process, later

    assert revoked == again == replace(first, revoked_at=T0 + timedelta(hours=1))
    assert not_mine is None
    listed = await storage.api_keys.find(tenant.id)
    assert [k.id for k in listed] == ["k-1", "k-2"]
    assert listed[0].name == "kiosk-17" and listed[0].expires_at == expires
    assert listed[0].resources == frozenset(scope) and listed[1].resources is None
    assert listed[1].last_used_at == T0 + timedelta(minutes=5)
    assert (await storage.api_keys.get_by_hash(theirs.secret_hash)) == theirs
